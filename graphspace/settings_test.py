"""Settings for the test suite and the processes it starts: the production settings with a
fast password hash (the default PBKDF2 costs about half a second per user created)."""

from graphspace.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Several suites on one machine (a developer's and CI's) must not share a test database.
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_graphspace")}  # noqa: F405
