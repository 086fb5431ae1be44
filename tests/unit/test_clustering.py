"""The clustering rule: windows, the span limit, keys, interleaving, ties. Batches arrive one
after another, as persist stores them: `place` decides each batch's clusters, and a cluster a
batch joins or opens reaches to the batch's arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notifications.clustering import Pair, Span, cluster_key, fits, place

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
UPLOADS = cluster_key(topic="owner", type="upload", resource="graph")
UPDATES = cluster_key(topic="owner", type="update", resource="graph")
BOB = 1


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def arrive(batches: list[tuple[datetime, list[str]]], stored: dict[Pair, tuple[int, Span]] | None = None,
           **rule: Any) -> tuple[list[list[int]], dict[Pair, tuple[int, Span]]]:
    """Each batch (its arrival, the keys of its rows for one recipient) placed as persist
    places it; returns each row's cluster id, batch by batch, and every cluster's span."""
    held = dict(stored or {})
    spans = {cid: s for cid, s in held.values()}
    placed = []
    for at, keys in batches:
        joins, new = place([(BOB, k) for k in dict.fromkeys(keys)], held, at, **rule)
        for pair in new:
            joins[pair] = cid = 100 + len(spans)
            spans[cid] = Span(at, at)
        for pair, cid in joins.items():
            s = spans[cid]
            spans[cid] = Span(min(s.first_at, at), max(s.last_at, at))
            held[pair] = (cid, spans[cid])
        placed.append([joins[(BOB, k)] for k in keys])
    return placed, held


def test_notifications_within_the_window_of_the_previous_one_share_a_cluster() -> None:
    placed, held = arrive([(minutes(0), [UPLOADS]), (minutes(50), [UPLOADS]), (minutes(100), [UPLOADS])])
    assert placed == [[100]] * 3
    assert held == {(BOB, UPLOADS): (100, Span(minutes(0), minutes(100)))}


def test_a_gap_longer_than_the_window_opens_a_new_cluster() -> None:
    placed, _ = arrive([(minutes(0), [UPLOADS]), (minutes(61), [UPLOADS])])
    assert placed == [[100], [101]]


def test_a_cluster_never_spans_more_than_the_maximum() -> None:
    times = [minutes(50 * i) for i in range(40)]  # every 50 min, for 33 hours
    placed, _ = arrive([(t, [UPLOADS]) for t in times])
    clusters = {cid: [t for t, p in zip(times, placed, strict=True) if p == [cid]] for [cid] in placed}
    assert len(clusters) == 2
    assert all(ts[-1] - ts[0] <= timedelta(hours=24) for ts in clusters.values())


def test_the_window_and_span_are_configurable() -> None:
    batches = [(minutes(0), [UPLOADS]), (minutes(5), [UPLOADS])]
    assert arrive(batches, window=timedelta(minutes=2))[0] == [[100], [101]]
    assert arrive(batches, span=timedelta(minutes=3))[0] == [[100], [101]]


def test_other_kinds_in_between_do_not_break_a_cluster() -> None:
    placed, _ = arrive([(minutes(0), [UPLOADS]), (minutes(1), [UPDATES]), (minutes(2), [UPLOADS]),
                        (minutes(3), [UPDATES])])
    assert placed == [[100], [101], [100], [101]]


def test_group_clusters_are_per_group_and_per_actor() -> None:
    a = cluster_key(topic="group", type="share", resource="graph", group_id=1, actor="alice@example.com")
    b = cluster_key(topic="group", type="share", resource="graph", group_id=1, actor="bob@example.com")
    c = cluster_key(topic="group", type="share", resource="graph", group_id=2, actor="alice@example.com")
    assert len({a, b, c}) == 3
    placed, _ = arrive([(minutes(0), [a, b, c]), (minutes(1), [a])])
    assert placed == [[100, 101, 102], [100]]


def test_the_owner_topic_ignores_the_actor_and_the_resource_id() -> None:
    assert cluster_key(topic="owner", type="update", resource="graph", actor="a") == \
        cluster_key(topic="owner", type="update", resource="graph", actor="b")


def test_a_stored_open_cluster_takes_the_next_notification_if_it_fits() -> None:
    stored = {(BOB, UPLOADS): (42, Span(minutes(0), minutes(30)))}
    assert place([(BOB, UPLOADS)], stored, minutes(80)) == ({(BOB, UPLOADS): 42}, [])
    assert place([(BOB, UPLOADS)], stored, minutes(91)) == ({}, [(BOB, UPLOADS)])


def test_the_rows_of_one_batch_with_one_key_share_one_cluster_whatever_comes_between() -> None:
    placed, _ = arrive([(minutes(0), [UPLOADS, UPDATES, UPLOADS])])
    assert placed[0][0] == placed[0][2] != placed[0][1]


def test_fits_needs_both_the_window_and_the_span() -> None:
    s = Span(minutes(0), minutes(60 * 23 + 30))
    assert fits(s, minutes(60 * 23 + 59))
    assert not fits(s, minutes(60 * 24 + 1))


def test_an_arrival_slightly_before_the_clusters_last_one_still_joins_it() -> None:
    # Another worker's batch committed first with a later clock: this one is not a new cluster.
    stored = {(BOB, UPLOADS): (7, Span(minutes(10), minutes(10)))}
    assert place([(BOB, UPLOADS)], stored, minutes(9.99)) == ({(BOB, UPLOADS): 7}, [])
