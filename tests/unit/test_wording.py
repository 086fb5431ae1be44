"""Personal wording of notifications and clusters."""

from __future__ import annotations

from notifications.wording import cluster_text, item_text, name_preview

A, B = "alice@example.com", "bob@example.com"


def test_the_actor_reads_you_and_everyone_else_reads_the_actor() -> None:
    kwargs = dict(type="share", resource="graph", name="XYZ", actor=A, group_name="Lab")
    assert item_text(viewer=A, **kwargs) == "You shared graph XYZ with Lab"
    assert item_text(viewer=B, **kwargs) == "alice@example.com shared graph XYZ with Lab"


def test_members_read_who_was_added_or_removed_and_the_member_reads_you() -> None:
    assert item_text(type="add", resource="group_member", name=B, actor=A, viewer=B, group_name="Lab") == \
        "alice@example.com added you to Lab"
    assert item_text(type="remove", resource="group_member", name=B, actor=A, viewer=A, group_name="Lab") == \
        "You removed bob@example.com from Lab"


def test_owner_notifications_name_the_thing() -> None:
    assert item_text(type="upload", resource="graph", name="XYZ", actor=A, viewer=A) == "You uploaded graph XYZ"
    assert item_text(type="unshare", resource="layout", name="L", actor=B, viewer=A, group_name="Lab") == \
        "bob@example.com stopped sharing layout L with Lab"
    assert item_text(type="update", resource="graph", name="XYZ", actor=None, viewer=A) == "Someone updated graph XYZ"


def test_clusters_count_what_they_hold() -> None:
    assert cluster_text(topic="owner", type="upload", resource="graph", count=5, actor=A, viewer=A) == "5 graphs uploaded"
    assert cluster_text(topic="owner", type="update", resource="layout", count=1, actor=A, viewer=A) == "1 layout updated"
    assert cluster_text(topic="group", type="share", resource="graph", count=3, actor=A, viewer=B, group_name="Lab") == \
        "alice@example.com shared 3 graphs with Lab"
    assert cluster_text(topic="group", type="add", resource="group_member", count=2, actor=A, viewer=A,
                        group_name="Lab") == "You added 2 members to Lab"


def test_the_preview_names_the_first_few_and_counts_the_rest() -> None:
    assert name_preview(["XYZ", "ABC", "DEF", "GHI", "JKL"], 5) == "XYZ, ABC, DEF and 2 more"
    assert name_preview(["XYZ"], 1) == "XYZ"
    assert name_preview(["A", "B"], 2) == "A, B"
