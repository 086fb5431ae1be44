"""Owner upload events offered at a steady rate, as the steady-rate and latency benchmarks
need them: every event due by the end of a tick is written in one transaction (several
requests' worth), and each tick's range is handed back after it committed."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from django.db import transaction

from graphspace import producer

TICK = 0.010  # events due within one tick are committed in one transaction


def offer_uploads(rate: float, total: int, emails: Sequence[str], base: int) -> Iterator[tuple[int, int]]:
    """Write `total` upload events at `rate` per second, to `emails` in turn, with resource
    ids from `base`; yields (first, end) of each tick's events once they are committed."""
    started = time.perf_counter()
    n = 0
    while n < total:
        pause = started + n / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        upto = min(total, max(n + 1, int((time.perf_counter() + TICK - started) * rate)))
        with transaction.atomic():
            for k in range(n, upto):
                producer.send_message("owner", {
                    "owner_email": emails[k % len(emails)], "message": f"New graph G{k} uploaded.",
                    "resource": "graph", "resource_id": base + k, "resource_name": f"G{k}", "type": "upload"})
        yield n, upto
        n = upto
