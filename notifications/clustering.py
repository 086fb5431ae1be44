"""The clustering rule, as pure functions.

Notifications of one recipient with the same topic, type and resource kind (and, on the
group topic, the same group and the same actor) form one cluster while each new one
arrives within WINDOW of the previous one and the cluster spans at most SPAN from its
first. Another kind of notification arriving in between does not break a cluster (the
original's "islands" did, so its Unread and All views could disagree).

Clusters are assigned when rows are written and stored, so the list, the counts, the
expand view and mark-read all read the same clusters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_WINDOW = timedelta(hours=1)
DEFAULT_SPAN = timedelta(hours=24)


def cluster_key(*, topic: str, type: str, resource: str, group_id: int | None = None, actor: str | None = None) -> str:
    """What notifications must share to be one cluster (the recipient is the other half)."""
    if topic == "group":
        return f"group:{group_id}:{actor or ''}:{type}:{resource}"
    if topic == "watching":
        return f"watching:{actor or ''}:{type}:{resource}"
    return f"owner:{type}:{resource}"


@dataclass(frozen=True)
class Span:
    first_at: datetime
    last_at: datetime


def fits(cluster: Span, at: datetime, *, window: timedelta = DEFAULT_WINDOW, span: timedelta = DEFAULT_SPAN) -> bool:
    """Whether a notification arriving `at` joins `cluster`. An arrival a little before the
    cluster's last one (another worker's clock, or its batch committed first) still joins if
    it is within the window."""
    return abs(at - cluster.last_at) <= window and max(at, cluster.last_at) - min(at, cluster.first_at) <= span


@dataclass(frozen=True)
class Assignment:
    """Where one notification goes: an existing cluster (by id) or the n-th new one."""

    existing: int | None = None
    new: int | None = None


def assign(
    items: Sequence[tuple[str, datetime]],
    open_clusters: Mapping[str, tuple[int, Span]],
    *,
    window: timedelta = DEFAULT_WINDOW,
    span: timedelta = DEFAULT_SPAN,
) -> tuple[list[Assignment], list[tuple[str, Span]]]:
    """Assign items (key, arrival time) of one recipient to clusters.

    `open_clusters` holds, per key, the newest stored cluster (its id and span). Items are
    taken in arrival order; ties keep their given order, so the result is deterministic.
    Returns one Assignment per item, in the given order, and the new clusters to create
    (their key and span) indexed by Assignment.new.
    """
    order = sorted(range(len(items)), key=lambda i: items[i][1])
    current: dict[str, tuple[Assignment, Span]] = {
        key: (Assignment(existing=cid), s) for key, (cid, s) in open_clusters.items()
    }
    new: list[tuple[str, Span]] = []
    result: list[Assignment | None] = [None] * len(items)
    for i in order:
        key, at = items[i]
        held = current.get(key)
        if held is not None and fits(held[1], at, window=window, span=span):
            where, s = held
            s = Span(min(s.first_at, at), max(s.last_at, at))
        else:
            where, s = Assignment(new=len(new)), Span(at, at)
            new.append((key, s))
        if where.new is not None:
            new[where.new] = (key, s)
        current[key] = (where, s)
        result[i] = where
    return [r for r in result if r is not None], new
