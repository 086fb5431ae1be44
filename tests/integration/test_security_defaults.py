"""The security defaults of a deployment: no start on a public or weak signing key,
`check --deploy` clean behind https, a Content-Security-Policy the templates can live with,
and no GET that changes a notification."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from graphspace.settings import DEVELOPMENT_SECRET_KEY, secret_key_problem
from notifications.events import new_event
from notifications.models import OwnerNotification
from notifications.persist import persist_events
from tests.conftest import People

ROOT = Path(__file__).resolve().parents[2]
# The pages' templates; emails are not served under the policy (mail clients want inline styles).
TEMPLATES = [t for t in (*ROOT.glob("graphspace/templates/**/*.html"), *ROOT.glob("notifications/templates/**/*.html"))
             if "/email/" not in str(t)]


def django_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh process on the production settings module, with no key unless given one:
    `manage.py ARGS`, or with no ARGS only the settings loaded (what every process does first)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment.update({"DJANGO_SETTINGS_MODULE": "graphspace.settings",
                        "DJANGO_SECRET_KEY_FILE": str(ROOT / "var" / "no-such-key-file"), **env})
    command = ["manage.py", *args] if args else ["-c", "import graphspace.settings"]
    return subprocess.run([sys.executable, *command], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("key", "problem"), [
    (DEVELOPMENT_SECRET_KEY, "built-in development key"),
    ("change-me", "placeholder"),
    ("CHANGE-ME" + "x" * 60, "placeholder"),
    ("django-insecure-" + secrets.token_urlsafe(50), "django-insecure-"),
    (secrets.token_urlsafe(30), "shorter than 50"),
    ("ab" * 40, "fewer than 5 different"),
])
def test_a_weak_secret_key_has_a_problem(key: str, problem: str) -> None:
    assert problem in (secret_key_problem(key) or "")


def test_a_random_secret_key_has_none() -> None:
    assert secret_key_problem(secrets.token_urlsafe(50)) is None


@pytest.mark.parametrize("key", [None, "change-me", "too-short-but-random-0123"])
def test_without_debug_it_refuses_to_start_on_a_public_or_weak_key(key: str | None) -> None:
    result = django_process(**({"DJANGO_SECRET_KEY": key} if key else {}))
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY" in result.stderr


def test_with_debug_or_a_strong_key_it_starts() -> None:
    assert django_process(DJANGO_DEBUG="true").returncode == 0
    result = django_process(DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stderr


def test_it_reads_the_key_that_make_run_keeps_in_var(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text(DEVELOPMENT_SECRET_KEY + "\n")
    # The file is read (its weak key is refused by name)...
    assert "built-in development key" in django_process(DJANGO_SECRET_KEY_FILE=str(key_file)).stderr
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    assert django_process(DJANGO_SECRET_KEY_FILE=str(key_file)).returncode == 0


def test_check_deploy_is_clean_behind_https() -> None:
    key = secrets.token_urlsafe(50)
    result = django_process("check", "--deploy", "--fail-level", "WARNING",
                            DJANGO_SECRET_KEY=key, DJANGO_SECURE="true", DJANGO_ALLOWED_HOSTS="graphspace.example.org")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    # Without DJANGO_SECURE the same check names what is missing: this test can fail.
    plain = django_process("check", "--deploy", DJANGO_SECRET_KEY=key)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in plain.stderr


def test_every_page_carries_a_policy_without_inline_code(people: People) -> None:
    client = Client()
    client.force_login(people.alice)
    for path in ("/login/", "/", "/notifications/", "/graphs/", "/groups/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe" not in policy
        assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_template_has_inline_script_style_or_handler(template: Path) -> None:
    text = template.read_text()
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert not re.search(r"\sstyle\s*=", text), "style attribute"
    assert "<style" not in text
    for tag in re.findall(r"<script\b[^>]*>", text):
        assert "src=" in tag or "csp_nonce" in tag, tag


def test_opening_a_notification_by_its_link_changes_nothing_and_the_pages_post_reads_it(people: People) -> None:
    persist_events([new_event("owner", {"owner_email": "bob@example.com", "message": "m", "resource": "graph",
                                        "resource_id": 7, "resource_name": "G7", "type": "upload"})])
    row = OwnerNotification.objects.get()
    bob = Client(enforce_csrf_checks=True)
    bob.force_login(people.bob)
    assert bob.get(f"/notifications/open/owner/{row.id}/").status_code == 410  # graph 7 does not exist
    row.refresh_from_db()
    assert row.is_read is False
    read = f"/api/v1/notifications/owner/{row.id}/read"
    # GET never reads; neither does a POST without the page's CSRF token.
    assert bob.get(read).status_code == 405
    assert bob.post(read).status_code == 403
    row.refresh_from_db()
    assert row.is_read is False
    bob.get("/notifications/")
    response = bob.post(read, HTTP_X_CSRFTOKEN=bob.cookies["csrftoken"].value)
    assert response.status_code == 200 and response.json()["unread_count"] == 0
    row.refresh_from_db()
    assert row.is_read is True
