"""`python manage.py send_digests`: the daily digest, now.

By default in this process, chunk after chunk (the same code the Celery chunk tasks run);
with --queue, through Celery exactly as beat starts it at night.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from notifications import digest


class Command(BaseCommand):
    help = "Send the daily digest now to every opted-in user with unread notifications not yet emailed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--queue", action="store_true", help="enqueue tasks.send_digests for the Celery workers")
        parser.add_argument("--period", help="the digest's day, YYYY-MM-DD (default: today in TIME_ZONE); "
                                             "users who already have that day's digest are skipped")

    def handle(self, *args: Any, queue: bool = False, period: str | None = None, **options: Any) -> None:
        try:
            day = date.fromisoformat(period) if period else digest.current_period()
        except ValueError:
            raise CommandError(f"--period {period!r} is not a date (YYYY-MM-DD)")
        if queue:
            from tasks.digest import send_digests

            result = send_digests.delay(day.isoformat())
            self.stdout.write(f"digest {day}: queued as task {result.id}")
            return
        summary = digest.run(day)
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary.items())) or "nobody is due"
        self.stdout.write(f"digest {day}: {counts}")
        if summary.get("failed"):
            raise CommandError(f"{summary['failed']} digests not sent; run again to retry them")
