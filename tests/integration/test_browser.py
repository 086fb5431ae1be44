"""Two people in two browsers (Playwright driving Debian's headless Chromium) on the real
system: the web process (uvicorn), the Kafka bridge, a Celery worker, Redis channels and a real websocket.

Screenshots of the page and the bell land in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright import sync_api as playwright_api

from graphspace import actions
from graphspace.models import Layout
from notifications.events import new_event
from notifications.models import GroupNotification, OwnerNotification
from notifications.persist import persist_events
from tests.conftest import PASSWORD, People
from tests.integration.conftest import ARTIFACTS, wait_for
from tests.integration.helpers import GRAPH

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
XSS_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between browser steps are plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


# Each document reports what its Content-Security-Policy blocked on the console, where the
# test collects it across navigations (Chromium also logs its own "Refused to ..." line).
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " on " + e.documentURI);
});"""


def log_in(browser: Any, web: str, email: str, dialogs: list[str], violations: list[str] | None = None) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    if violations is not None:
        context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    if violations is not None:
        page.on("console", lambda message: violations.append(message.text)
                if "CSP violation" in message.text or "Content Security Policy" in message.text else None)
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{web}/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web}/")
    return page


def bell_count(page: Any) -> int:
    return int(page.get_attribute("#notification-bell", "data-unread-count"))


def share_by_api(web: str, email: str, group_id: int, graph_id: int) -> None:
    response = requests.post(f"{web}/api/v1/groups/{group_id}/graphs", data={"graph_id": graph_id},
                             auth=(email, PASSWORD), headers={"Accept": "application/json"}, timeout=10)
    assert response.status_code == 201, response.text


def test_bob_sees_alices_share_live_expands_it_and_marks_it_read(
    chromium: Any, web: str, people: People, pipeline: None,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    lab = actions.create_group(people.alice, name="Lab <b>bold</b>")
    actions.add_member(people.alice, lab, people.bob)
    graphs = [actions.upload_graph(people.alice, name=name, graph_json=GRAPH) for name in (XSS_NAME, "Second graph")]
    wait_for(lambda: GroupNotification.objects.filter(member_id="bob@example.com").exists(), what="bob's first notification")

    dialogs: list[str] = []
    bob = log_in(chromium, web, "bob@example.com", dialogs)
    log_in(chromium, web, "alice@example.com", dialogs)
    before = bell_count(bob)
    assert before >= 1
    # Let bob's websocket connect before alice acts.
    bob.wait_for_function("() => document.readyState === 'complete'")
    time.sleep(0.5)

    started = time.monotonic()
    share_by_api(web, "alice@example.com", lab.id, graphs[0].id)
    bob.wait_for_function(f"() => Number(document.getElementById('notification-bell').dataset.unreadCount) >= {before + 1}",
                          timeout=2000)
    to_bell = time.monotonic() - started
    print(f"\naction to bell: {to_bell * 1000:.0f} ms")
    assert bell_count(bob) == before + 1
    toast = bob.locator("#toasts .toast").first
    toast.wait_for(state="visible", timeout=2000)
    assert toast.inner_text() == f"alice@example.com shared graph {XSS_NAME} with Lab <b>bold</b>"
    bob.screenshot(path=str(ARTIFACTS / "bell-after-share.png"))
    bob.locator("#notification-bell").screenshot(path=str(ARTIFACTS / "bell.png"))

    share_by_api(web, "alice@example.com", lab.id, graphs[1].id)
    bob.wait_for_function(f"() => Number(document.getElementById('notification-bell').dataset.unreadCount) >= {before + 2}",
                          timeout=2000)

    bob.goto(f"{web}/notifications/?state=unread")
    cluster = bob.locator(".cluster", has_text="alice@example.com shared 2 graphs with Lab <b>bold</b>")
    cluster.wait_for(timeout=3000)
    assert XSS_NAME in cluster.locator(".preview").inner_text()
    cluster.locator("button.expand").click()
    items = cluster.locator(".items .item")
    items.first.wait_for(timeout=3000)
    assert sorted(items.all_inner_texts())[0].startswith("alice@example.com shared graph")
    assert items.count() == 2
    bob.screenshot(path=str(ARTIFACTS / "notifications-page.png"), full_page=True)

    cluster.locator("button.mark").click()
    bob.wait_for_function(f"() => Number(document.getElementById('notification-bell').dataset.unreadCount) === {before}",
                          timeout=3000)
    assert bell_count(bob) == before
    assert GroupNotification.objects.filter(member_id="bob@example.com", type="share", is_read=False).count() == 0

    # The graph's name was shown as text everywhere and ran nothing.
    assert dialogs == []
    assert bob.locator("img[src=x]").count() == 0
    bob.screenshot(path=str(ARTIFACTS / "notifications-page-read.png"), full_page=True)
    # On a phone the page still fits: nothing wider than the screen.
    bob.set_viewport_size({"width": 390, "height": 844})
    bob.goto(f"{web}/notifications/")
    bob.locator(".cluster").first.wait_for(timeout=3000)
    assert bob.evaluate("() => document.documentElement.scrollWidth") <= 390
    bob.screenshot(path=str(ARTIFACTS / "notifications-page-phone.png"), full_page=True)


def test_the_pages_run_under_the_content_security_policy_and_opening_a_notification_reads_it_by_post(
    chromium: Any, web: str, people: People, transactional_db: None,
) -> None:
    lab = actions.create_group(people.bob, name="Lab")
    graph = actions.upload_graph(people.bob, name="Under policy", graph_json=GRAPH)
    actions.create_layout(people.bob, graph, name="Spread", positions_json={"a": {"x": 0, "y": 0}})
    # An update, stored here: a cluster of its own whatever the pipeline (if it runs) adds for
    # the actions above.
    persist_events([new_event("owner", {"owner_email": "bob@example.com", "actor_email": "bob@example.com",
                                        "message": "m", "resource": "graph", "resource_id": graph.id,
                                        "resource_name": "Under policy", "type": "update"})])
    dialogs: list[str] = []
    violations: list[str] = []
    bob = log_in(chromium, web, "bob@example.com", dialogs, violations)

    # The listener hears a violation: an inline script added to the page is refused.
    bob.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                 " document.body.appendChild(s); }")
    wait_for(lambda: any("script-src" in v for v in violations), timeout=5, what="the probe's violation")
    assert bob.evaluate("() => window.ran") is None
    violations.clear()

    for path in ("/", "/graphs/", f"/graphs/{graph.id}/", "/groups/", f"/groups/{lab.id}/", "/notifications/"):
        bob.goto(f"{web}{path}")
        bob.wait_for_load_state("networkidle")

    # The page's own GET of /notifications/ changed nothing; the click reads the notification
    # (a POST with the CSRF token), then opens its graph.
    row = OwnerNotification.objects.get(owner_id="bob@example.com", type="update")
    assert row.is_read is False
    bob.locator(".cluster", has_text="You updated graph Under policy").locator("a.text").click()
    bob.wait_for_url(f"{web}/graphs/{graph.id}/")
    row.refresh_from_db()
    assert row.is_read is True

    # site.js asks before a layout is deleted (no inline onsubmit); the dialog was dismissed.
    bob.locator("form[data-confirm] button.danger").first.click()
    wait_for(lambda: dialogs == ["Delete this layout?"], timeout=5, what="the confirm dialog")
    assert Layout.objects.filter(graph=graph).count() == 1

    assert violations == []
