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

from collections.abc import Iterable, Mapping
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


# A recipient (by user id) and a cluster key: one cluster is open per pair at most.
Pair = tuple[int, str]


def place(
    pairs: Iterable[Pair],
    open_clusters: Mapping[Pair, tuple[int, Span]],
    at: datetime,
    *,
    window: timedelta = DEFAULT_WINDOW,
    span: timedelta = DEFAULT_SPAN,
) -> tuple[dict[Pair, int], list[Pair]]:
    """Where a batch's notifications go: the pairs that join their open cluster (by id), and
    the pairs that need a new one.

    Every notification of a batch arrives at the same moment, the batch's arrival `at`, so
    the rows of one pair all join its open cluster, or all open one new cluster together.
    `open_clusters` holds, per pair, the newest stored cluster (its id and span).
    """
    joins: dict[Pair, int] = {}
    needing: list[Pair] = []
    for pair in pairs:
        held = open_clusters.get(pair)
        if held is not None and fits(held[1], at, window=window, span=span):
            joins[pair] = held[0]
        else:
            needing.append(pair)
    return joins, needing
