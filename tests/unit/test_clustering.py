"""The clustering rule: windows, the span limit, keys, interleaving, ties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifications.clustering import Assignment, Span, assign, cluster_key, fits

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
UPLOADS = cluster_key(topic="owner", type="upload", resource="graph")
UPDATES = cluster_key(topic="owner", type="update", resource="graph")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_notifications_within_the_window_of_the_previous_one_share_a_cluster() -> None:
    placed, new = assign([(UPLOADS, minutes(0)), (UPLOADS, minutes(50)), (UPLOADS, minutes(100))], {})
    assert placed == [Assignment(new=0)] * 3
    assert new == [(UPLOADS, Span(minutes(0), minutes(100)))]


def test_a_gap_longer_than_the_window_opens_a_new_cluster() -> None:
    placed, new = assign([(UPLOADS, minutes(0)), (UPLOADS, minutes(61))], {})
    assert placed == [Assignment(new=0), Assignment(new=1)]


def test_a_cluster_never_spans_more_than_the_maximum() -> None:
    times = [minutes(50 * i) for i in range(40)]  # every 50 min, for 33 hours
    placed, new = assign([(UPLOADS, t) for t in times], {})
    assert len(new) == 2
    assert all(s.last_at - s.first_at <= timedelta(hours=24) for _, s in new)


def test_the_window_and_span_are_configurable() -> None:
    placed, _ = assign([(UPLOADS, minutes(0)), (UPLOADS, minutes(5))], {}, window=timedelta(minutes=2))
    assert placed == [Assignment(new=0), Assignment(new=1)]
    placed, _ = assign([(UPLOADS, minutes(0)), (UPLOADS, minutes(5))], {}, span=timedelta(minutes=3))
    assert placed == [Assignment(new=0), Assignment(new=1)]


def test_other_kinds_in_between_do_not_break_a_cluster() -> None:
    items = [(UPLOADS, minutes(0)), (UPDATES, minutes(1)), (UPLOADS, minutes(2)), (UPDATES, minutes(3))]
    placed, new = assign(items, {})
    assert placed == [Assignment(new=0), Assignment(new=1), Assignment(new=0), Assignment(new=1)]
    assert [k for k, _ in new] == [UPLOADS, UPDATES]


def test_group_clusters_are_per_group_and_per_actor() -> None:
    a = cluster_key(topic="group", type="share", resource="graph", group_id=1, actor="alice@example.com")
    b = cluster_key(topic="group", type="share", resource="graph", group_id=1, actor="bob@example.com")
    c = cluster_key(topic="group", type="share", resource="graph", group_id=2, actor="alice@example.com")
    assert len({a, b, c}) == 3
    placed, new = assign([(a, minutes(0)), (b, minutes(0)), (c, minutes(0)), (a, minutes(1))], {})
    assert placed == [Assignment(new=0), Assignment(new=1), Assignment(new=2), Assignment(new=0)]


def test_the_owner_topic_ignores_the_actor_and_the_resource_id() -> None:
    assert cluster_key(topic="owner", type="update", resource="graph", actor="a") == \
        cluster_key(topic="owner", type="update", resource="graph", actor="b")


def test_a_stored_open_cluster_takes_the_next_notification_if_it_fits() -> None:
    stored = {UPLOADS: (42, Span(minutes(0), minutes(30)))}
    placed, new = assign([(UPLOADS, minutes(80))], stored)
    assert placed == [Assignment(existing=42)] and new == []
    placed, new = assign([(UPLOADS, minutes(91))], stored)
    assert placed == [Assignment(new=0)]


def test_ties_in_time_are_assigned_deterministically_in_arrival_order() -> None:
    items = [(UPLOADS, minutes(0)), (UPDATES, minutes(0)), (UPLOADS, minutes(0))]
    assert assign(items, {}) == assign(list(items), {})
    placed, _ = assign(items, {})
    assert placed[0] == placed[2] != placed[1]


def test_fits_needs_both_the_window_and_the_span() -> None:
    s = Span(minutes(0), minutes(60 * 23 + 30))
    assert fits(s, minutes(60 * 23 + 59))
    assert not fits(s, minutes(60 * 24 + 1))


def test_an_arrival_slightly_before_the_clusters_last_one_still_joins_it() -> None:
    # Another worker's batch committed first with a later clock: this one is not a new cluster.
    stored = {UPLOADS: (7, Span(minutes(10), minutes(10)))}
    placed, new = assign([(UPLOADS, minutes(9.99))], stored)
    assert placed == [Assignment(existing=7)] and new == []
