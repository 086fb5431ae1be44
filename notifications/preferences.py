"""Reading and setting a person's notification preferences and group mutes (issue 11).

The rules are in notifications/recipients.py; this is their storage. Every write sets a
value (never toggles), so a retried request changes nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from graphspace.models import Group, User
from notifications.models import GroupMute, NotificationPreference
from notifications.recipients import Preferences, preference_key


def read(user: User) -> Preferences:
    site_off: set[str] = set()
    email_off: set[str] = set()
    for kind, type, site, email in NotificationPreference.objects.filter(user=user).values_list(
            "kind", "type", "site", "email"):
        if not site:
            site_off.add(preference_key(kind, type))
        if not email:
            email_off.add(preference_key(kind, type))
    muted = GroupMute.objects.filter(user=user).values_list("group_id", flat=True)
    return Preferences(frozenset(site_off), frozenset(email_off), frozenset(muted))


@dataclass(frozen=True)
class Change:
    kind: str
    type: str
    site: bool | None = None  # None: unchanged
    email: bool | None = None


def set_many(user: User, changes: Sequence[Change], digest: bool | None = None) -> None:
    """Set each given channel of each given kind and type; the digest opt-in if given."""
    with transaction.atomic():
        if digest is not None:
            User.objects.filter(pk=user.pk).update(receive_notification_email=digest)
        for change in changes:
            if change.site is None and change.email is None:
                continue
            row, _ = NotificationPreference.objects.select_for_update().get_or_create(
                user=user, kind=change.kind, type=change.type)
            if change.site is not None:
                row.site = change.site
            if change.email is not None:
                row.email = change.email
            if row.site and row.email:
                row.delete()  # the defaults: no row
            else:
                row.save()


def set_mute(user: User, group: Group, muted: bool) -> None:
    if muted:
        GroupMute.objects.get_or_create(user=user, group=group)
    else:
        GroupMute.objects.filter(user=user, group=group).delete()


def is_muted(user: User, group: Group) -> bool:
    return GroupMute.objects.filter(user=user, group=group).exists()


def muted_group_ids(user: User) -> set[int]:
    return set(GroupMute.objects.filter(user=user).values_list("group_id", flat=True))
