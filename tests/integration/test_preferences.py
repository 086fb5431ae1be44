"""Preferences and group mutes (issue 11), through the notifications API: set (never
toggled), applied by the persist task when it resolves recipients, and by the digest."""

from __future__ import annotations

from typing import Any

import pytest

from graphspace import actions
from graphspace.models import Graph, User
from notifications import digest
from notifications.digest import Outcome
from notifications.models import GroupNotification, WatchingNotification
from tests.conftest import People
from tests.integration.helpers import GRAPH
from tests.integration.test_digest import Mailbox, mailbox, opt_in, smtp_port, today  # noqa: F401 - fixtures
from tests.integration.test_watching import A, B, C, call, process, watch, watching_rows


@pytest.fixture
def public_graph(people: People) -> Graph:
    return actions.upload_graph(people.alice, name="XYZ", graph_json=GRAPH, is_public=True)


def test_the_defaults_are_everything_on_and_a_put_sets_only_what_it_names(people: People) -> None:
    prefs = call(B, "GET", "preferences")
    assert prefs["muted_groups"] == [] and prefs["receive_notification_email"] is False
    assert prefs["kinds"]["watching"]["update"] == {"site": True, "email": True}
    body = {"kinds": {"watching": {"update": {"site": False}}, "group": {"share": {"email": False}}}}
    first = call(B, "PUT", "preferences", body)
    # Set, not toggled: the same request again changes nothing.
    assert call(B, "PUT", "preferences", body) == first
    assert first["kinds"]["watching"]["update"] == {"site": False, "email": True}
    assert first["kinds"]["group"]["share"] == {"site": True, "email": False}
    assert first["kinds"]["owner"]["upload"] == {"site": True, "email": True}
    # Another user's settings are their own.
    assert call(C, "GET", "preferences")["kinds"]["watching"]["update"]["site"] is True
    call(B, "PUT", "preferences", {"kinds": {"watching": {"explode": {"site": False}}}}, status=400)
    call(B, "PUT", "preferences", {"kinds": {"watching": {"update": {"site": "maybe"}}}}, status=400)


def test_site_off_for_updates_means_the_next_update_creates_no_row(people: People, public_graph: Graph) -> None:
    watch(B, "graph", public_graph.id)
    watch(C, "graph", public_graph.id)
    call(B, "PUT", "preferences", {"kinds": {"watching": {"update": {"site": False}}}})
    actions.update_graph(people.alice, public_graph, name="XYZ2")
    process()
    assert watching_rows() == [(C, "update", "graph")]
    # Other types still reach him.
    actions.delete_graph(people.alice, public_graph)
    process()
    assert watching_rows(type="delete") == [(B, "delete", "graph"), (C, "delete", "graph")]


def test_a_muted_group_creates_nothing_for_that_member_but_their_own_removal(people: People) -> None:
    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    actions.add_member(people.alice, lab, people.carol)
    process()
    GroupNotification.objects.all().delete()
    assert call(B, "PUT", f"groups/{lab.id}/mute", {"muted": True}) == {"group_id": lab.id, "muted": True}
    assert call(B, "PUT", f"groups/{lab.id}/mute", {"muted": True})["muted"] is True
    assert call(B, "GET", "preferences")["muted_groups"] == [lab.id]
    # Muting a group you are not in is a 404.
    other = actions.create_group(people.carol, name="Other")
    call(B, "PUT", f"groups/{other.id}/mute", {"muted": True}, status=404)

    graph = actions.upload_graph(people.alice, name="G", graph_json=GRAPH)
    actions.share_graph(people.alice, lab, graph)
    actions.remove_member(people.alice, lab, people.bob)
    process()
    told = sorted(GroupNotification.objects.values_list("member_id", "type"))
    assert (B, "share") not in told and (C, "share") in told and (A, "share") in told
    # His own removal still reaches him.
    assert (B, "remove") in told

    # Unmuted: back to normal.
    actions.add_member(people.alice, lab, people.bob)
    call(B, "PUT", f"groups/{lab.id}/mute", {"muted": False})
    actions.unshare_graph(people.alice, lab, graph)
    process()
    assert GroupNotification.objects.filter(member_id=B, type="unshare").count() == 1


def test_the_digest_leaves_out_what_bob_turned_off_for_email(people: People, public_graph: Graph,
                                                              mailbox: Mailbox) -> None:  # noqa: F811
    bob: User = people.bob  # type: ignore[assignment]
    opt_in(bob)
    watch(B, "graph", public_graph.id)
    call(B, "PUT", "preferences", {"kinds": {"watching": {"update": {"email": False}}}})
    actions.update_graph(people.alice, public_graph, name="Renamed")
    layout = actions.create_layout(people.alice, public_graph, name="L1", is_shared=True)
    actions.delete_layout(people.alice, layout)
    process()
    # On the site, all three.
    assert [t for _, t, _ in watching_rows()] == ["create", "delete", "update"]

    result = digest.send_digest(bob.id, today())

    assert result.outcome is Outcome.SENT and result.listed == 2
    text = mailbox.messages[0].part("plain")
    assert "created layout L1 on a graph you watch" in text
    assert "deleted layout L1, which you watch" in text
    assert "Renamed" not in text
    # The update stays unread on the site and is never emailed.
    assert list(WatchingNotification.objects.filter(is_email_sent=False).values_list("type", flat=True)) == ["update"]


def test_the_api_lists_and_unwatches(people: People, public_graph: Graph) -> None:
    layout = actions.create_layout(people.alice, public_graph, name="L1", is_shared=True)
    watch(B, "layout", layout.id)
    watch(B, "graph", public_graph.id)
    listed = call(B, "GET", "watches")["watches"]
    assert sorted((w["resource"], w["resource_id"], w["graph_id"]) for w in listed) == [
        ("graph", public_graph.id, public_graph.id), ("layout", layout.id, public_graph.id)]
    assert call(B, "DELETE", f"watches/layout/{layout.id}")["unwatched"] is True
    assert call(B, "DELETE", f"watches/layout/{10**25}", status=404)["error_code"] == 1016
    spec: Any = client_spec()
    for path in ("/watches", "/watches/{resource}/{resource_id}", "/preferences", "/groups/{group_id}/mute"):
        assert path in spec["paths"]


def client_spec() -> Any:
    return call(A, "GET", "openapi.json")


def test_the_pages_mute_a_group_and_set_every_preference_at_once(people: People) -> None:
    from django.test import Client

    from notifications.models import GroupMute, NotificationPreference

    lab = actions.create_group(people.alice, name="Lab")
    actions.add_member(people.alice, lab, people.bob)
    bob = Client()
    bob.force_login(people.bob)
    assert b"Mute notifications" in bob.get(f"/groups/{lab.id}/").content
    response = bob.post("/notifications/preferences/mute/", {"group_id": lab.id, "muted": "1", "back": "group"})
    assert response.status_code == 302 and response["Location"] == f"/groups/{lab.id}/"
    assert GroupMute.objects.filter(user=people.bob, group=lab).count() == 1
    assert b"Unmute notifications" in bob.get(f"/groups/{lab.id}/").content
    # carol is not in Lab: 404, and nothing stored.
    carol = Client()
    carol.force_login(people.carol)
    assert carol.post("/notifications/preferences/mute/", {"group_id": lab.id, "muted": "1"}).status_code == 404

    page = bob.get("/notifications/preferences/")
    assert page.status_code == 200 and b'name="site.watching.update"' in page.content
    # The form sends the whole state: everything ticked but two boxes.
    ticked = {f"{channel}.{kind}.{type}": "on" for channel in ("site", "email")
              for kind, types in call(B, "GET", "preferences")["kinds"].items() for type in types}
    del ticked["site.watching.update"], ticked["email.owner.upload"]
    assert bob.post("/notifications/preferences/", ticked).status_code == 302
    assert sorted(NotificationPreference.objects.filter(user=people.bob).values_list("kind", "type", "site", "email")) == [
        ("owner", "upload", True, False), ("watching", "update", False, True)]
    # Posted again: the same state (set, not toggled).
    bob.post("/notifications/preferences/", ticked)
    assert NotificationPreference.objects.filter(user=people.bob).count() == 2


@pytest.mark.usefixtures("pipeline")
def test_through_the_pipeline_a_muted_group_and_a_lost_watch_bring_bob_nothing_but_his_removal(people: People) -> None:
    import time

    from notifications.models import OwnerNotification, Watch
    from tests.integration.conftest import wait_for
    from tests.integration.helpers import Api

    alice = Api(people.alice)
    gid = alice.call("POST", "groups/", {"name": "Lab", "description": "d", "owner_email": A}, form=True, expect=201)["id"]
    for member in (B, C):
        alice.call("POST", f"groups/{gid}/members", {"member_email": member}, form=True, expect=201)
    first = alice.call("POST", "graphs/", {"name": "First", "is_public": 0, "graph_json": GRAPH, "owner_email": A}, expect=201)
    alice.call("POST", f"groups/{gid}/graphs", {"graph_id": first["id"]}, form=True, expect=201)
    watch(B, "graph", first["id"])
    call(B, "PUT", f"groups/{gid}/mute", {"muted": True})

    second = alice.call("POST", "graphs/", {"name": "Second", "is_public": 0, "graph_json": GRAPH, "owner_email": A},
                        expect=201)
    alice.call("POST", f"groups/{gid}/graphs", {"graph_id": second["id"]}, form=True, expect=201)
    alice.call("DELETE", f"groups/{gid}/members/{people.bob.id}")
    alice.call("PUT", f"graphs/{first['id']}", {"name": "First, renamed"})

    shared = GroupNotification.objects.filter(type="share", resource_id=second["id"])
    wait_for(lambda: shared.count() >= 2, what="the second share's rows")
    wait_for(lambda: GroupNotification.objects.filter(type="remove").count() >= 3, what="the removal's rows")
    wait_for(lambda: OwnerNotification.objects.filter(type="update").exists(), what="alice's update row")
    time.sleep(0.5)  # a row that should not exist would have had time to appear
    assert sorted(shared.values_list("member_id", flat=True)) == [A, C]
    assert sorted(GroupNotification.objects.filter(type="remove").values_list("member_id", flat=True)) == [A, B, C]
    # Removed from the only group that let him read it: the watch ended, the update is not his.
    assert not Watch.objects.filter(user=people.bob, ended_seq__isnull=True).exists()
    assert not WatchingNotification.objects.exists()
    # (Rows of the adds before the mute depend on when they were processed: preferences apply
    # as of processing. The share and the removal came after it.)
