"""Settings for the test suite and the processes it starts: the production settings with a
fast password hash (the default PBKDF2 costs about half a second per user created)."""

import os

# The suite's processes start with no key configured (CI: a fresh clone, no input); a key of
# the tests' own keeps the production check on instead of switching DEBUG on to pass it.
os.environ.setdefault("DJANGO_SECRET_KEY", "graphspace-tests-only-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from graphspace.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Several suites on one machine (a developer's, a helper's, CI's) must not share a test
# database: pytest-django drops and re-creates it at start, under the other suite's feet. So
# each run's is named after its process unless TEST_DATABASE_NAME says otherwise. (The
# processes a run starts get the name in DATABASE_URL, not from here.)
DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": env.str("TEST_DATABASE_NAME", default=f"test_graphspace_{os.getpid()}")  # noqa: F405
}
