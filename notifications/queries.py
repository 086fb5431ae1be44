"""Reading notifications: counts and pages, each one indexed query."""

from __future__ import annotations

from django.db import connection


def unread_count(email: str) -> int:
    """Unread notifications of one user, in one query on the two partial unread indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM owner_notification WHERE owner_email = %s AND NOT is_read)"
            " + (SELECT count(*) FROM group_notification WHERE member_email = %s AND NOT is_read)",
            [email, email],
        )
        return int(cursor.fetchone()[0])
