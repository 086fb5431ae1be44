"""Stored notifications: the seed's two tables, plus event_id, the actor and the cluster key."""

from __future__ import annotations

from django.db import models

from graphspace.models import Group, User

OWNER_TYPE_CHOICES = [(t, t) for t in ("create", "upload", "update", "delete")]
OWNER_RESOURCE_CHOICES = [(r, r) for r in ("graph", "layout", "group")]
GROUP_TYPE_CHOICES = [(t, t) for t in ("share", "unshare", "add", "remove")]
GROUP_RESOURCE_CHOICES = [(r, r) for r in ("graph", "layout", "group_member")]
WATCHING_TYPE_CHOICES = [(t, t) for t in ("create", "update", "delete", "share", "unshare", "publish", "unpublish")]
WATCHED_RESOURCE_CHOICES = [(r, r) for r in ("graph", "layout")]


class ToTheMinute(models.Func):
    """A moment rounded down to its minute. date_bin on an absolute time does not depend on
    the session's time zone, so PostgreSQL accepts it in a generated column (date_trunc on a
    timestamptz does)."""

    template = "date_bin('1 minute'::interval, %(expressions)s, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    output_field = models.DateTimeField()


class NotificationCluster(models.Model):
    """Similar notifications of one recipient, grouped when they are written (see
    notifications/clustering.py for the rule). Stored, so the list, the counts, the expand
    view and mark-read always agree."""

    # Indexed by cluster_newest, which leads with it.
    recipient = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="notification_clusters", db_index=False
    )
    topic = models.CharField(max_length=16)
    type = models.CharField(max_length=16)
    resource = models.CharField(max_length=16)
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # Part of the key on the group topic only: who acted.
    actor_email = models.CharField(max_length=254, blank=True, default="")
    key = models.CharField(max_length=400)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    # The page's sort key: last_at to the minute, kept by PostgreSQL. It moves at most once a
    # minute, so most of the updates that add to a cluster leave every indexed column as it
    # was and are HOT (no new index entries, dead versions pruned without VACUUM); ordering by
    # it and then last_at gives the page the same order as last_at alone (docs/storage.md).
    last_minute = models.GeneratedField(
        expression=ToTheMinute("last_at"), output_field=models.DateTimeField(), db_persist=True
    )
    size = models.IntegerField(default=0)
    unread = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "notification_cluster"
        indexes = [
            # The notifications page: this user's clusters, newest first, by cursor (the clusters
            # of one minute are put in last_at order by an incremental sort).
            models.Index(fields=["recipient", "-last_minute"], name="cluster_newest"),
            # The open cluster for a key: the newest one with that key (clusters of one key
            # are opened one after another, so the newest is the one with the highest id).
            # No column that an update changes: PostgreSQL's bottom-up deletion then keeps the
            # index compact while every batch rewrites the clusters it adds to.
            models.Index(fields=["recipient", "key", "-id"], name="cluster_by_key"),
        ]


class NotificationBase(models.Model):
    event_id = models.UUIDField()
    message = models.TextField()
    resource_id = models.BigIntegerField()
    resource_name = models.CharField(max_length=512, blank=True, default="")
    actor_email = models.CharField(max_length=254, null=True, blank=True)
    is_read = models.BooleanField(default=False)
    is_email_sent = models.BooleanField(default=False)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # When the action happened (from the event); created_at is when the row was written,
    # so a late event never lands in the middle of a page already read.
    occurred_at = models.DateTimeField()
    # Indexed with created_at by each table's "cluster items" index below.
    cluster = models.ForeignKey(
        NotificationCluster, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OwnerNotification(NotificationBase):
    type = models.CharField(max_length=16, choices=OWNER_TYPE_CHOICES)
    resource = models.CharField(max_length=16, choices=OWNER_RESOURCE_CHOICES)
    owner = models.ForeignKey(
        User,
        to_field="email",
        db_column="owner_email",
        on_delete=models.CASCADE,
        related_name="owner_notifications",
        # owner_notif_newest leads with it: a second index (and its LIKE twin) would only
        # cost every insert and every mark-read.
        db_index=False,
    )

    class Meta:
        db_table = "owner_notification"
        constraints = [
            # A redelivered event inserts nothing: ON CONFLICT DO NOTHING on this key. An owner
            # event has one recipient (its owner), so the event id alone is the key: 16 bytes
            # an entry instead of the id and an email (docs/storage.md).
            models.UniqueConstraint(fields=["event_id"], name="owner_notification_once")
        ]
        indexes = [
            # "This user's newest page" is a scan of this index. Without the id: the rows of one
            # batch share created_at, so their entries collapse into one posting list, and ties
            # are put in id order by an incremental sort (docs/storage.md).
            models.Index(fields=["owner", "-created_at"], name="owner_notif_newest"),
            # A cluster's newest items (previews, expand, mark-cluster-read). With the id: the
            # previews' LIMIT 3 per cluster must stop after three entries, and the planner
            # only does that when the index gives the whole order (docs/storage.md).
            models.Index(fields=["cluster", "-created_at", "-id"], name="owner_notif_cluster"),
        ]


class GroupNotification(NotificationBase):
    type = models.CharField(max_length=16, choices=GROUP_TYPE_CHOICES)
    resource = models.CharField(max_length=16, choices=GROUP_RESOURCE_CHOICES)
    member = models.ForeignKey(
        User,
        to_field="email",
        db_column="member_email",
        on_delete=models.CASCADE,
        related_name="group_notifications",
        db_index=False,
    )
    # The seed's column: on group notifications owner_email is the actor.
    owner_email = models.CharField(max_length=254, null=True, blank=True)
    # Indexed by group_notif_group.
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="notifications", db_index=False)

    class Meta:
        db_table = "group_notification"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "member"], name="group_notification_once")
        ]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="group_notif_newest"),
            # A group's rows, for its deletion: equal keys share one posting list, so this
            # costs a few bytes a row (a user's rows of one group are found by
            # group_notif_newest and a filter).
            models.Index(fields=["group"], name="group_notif_group"),
            models.Index(fields=["cluster", "-created_at", "-id"], name="group_notif_cluster"),
        ]


class WatchingNotification(NotificationBase):
    """The third kind (issue 11): something happened to a graph or layout the recipient
    watches. A table of its own, like the other two: its own recipient column, unique key,
    indexes and unread-counter triggers (migration 0008); docs/watching.md says why."""

    type = models.CharField(max_length=16, choices=WATCHING_TYPE_CHOICES)
    resource = models.CharField(max_length=16, choices=WATCHED_RESOURCE_CHOICES)
    watcher = models.ForeignKey(
        User,
        to_field="email",
        db_column="watcher_email",
        on_delete=models.CASCADE,
        related_name="watching_notifications",
        db_index=False,
    )
    # The graph the event is about (a layout's graph); no foreign key: the row outlives it.
    graph_id = models.BigIntegerField()

    class Meta:
        db_table = "watching_notification"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "watcher"], name="watching_notification_once")
        ]
        indexes = [
            models.Index(fields=["watcher", "-created_at"], name="watching_notif_newest"),
            models.Index(fields=["cluster", "-created_at", "-id"], name="watching_notif_cluster"),
        ]


class Watch(models.Model):
    """A user watching a graph or a layout, as a span of watch numbers (like a group's
    membership spans): `started_seq` when they began, `ended_seq` when they stopped or lost
    access. Numbers come from one sequence (`notification_watch_seq`); a watching event
    carries the number taken when its action committed, and its recipients are the watches
    on at that number, however late the pipeline runs (docs/watching.md). Rows outlive the
    graph or layout (no foreign key): a late event about a deleted graph still finds them."""

    GRAPH = "graph"
    LAYOUT = "layout"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    resource = models.CharField(max_length=16, choices=WATCHED_RESOURCE_CHOICES)
    resource_id = models.BigIntegerField()
    # The graph of the watched resource (itself, or the layout's graph): losing access to it
    # ends every watch on it and its layouts.
    graph_id = models.BigIntegerField()
    started_seq = models.BigIntegerField()
    # Null while watching.
    ended_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "notification_watch"
        constraints = [
            # One open watch per user and resource (watching twice is one watch).
            models.UniqueConstraint(
                fields=["user", "resource", "resource_id"], condition=models.Q(ended_seq__isnull=True),
                name="watch_open_once",
            )
        ]
        indexes = [
            # "The watchers of R at number S" (persist).
            models.Index(fields=["resource", "resource_id", "started_seq"], name="watch_by_resource"),
            # The open watches of a graph and its layouts (ending them when access is lost).
            models.Index(fields=["graph_id"], condition=models.Q(ended_seq__isnull=True), name="watch_open_by_graph"),
        ]


class NotificationPreference(models.Model):
    """One setting a user changed: for a kind (owner, group, watching) and a type of event,
    whether it appears on the site and whether it goes in the email digest. Only set
    (PUT), never toggled. A missing row is the default: both on."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16)
    type = models.CharField(max_length=16)
    site = models.BooleanField(default=True)
    email = models.BooleanField(default=True)

    class Meta:
        db_table = "notification_preference"
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "type"], name="preference_once")
        ]


class GroupMute(models.Model):
    """A member muted a group: its events create nothing for them (but their own removal)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "notification_group_mute"
        constraints = [
            models.UniqueConstraint(fields=["user", "group"], name="group_mute_once")
        ]


class UnreadCount(models.Model):
    """Each user's unread notifications, kept by the database itself: statement triggers on
    owner_notification and group_notification add what an INSERT, UPDATE or DELETE changed
    (migration 0006), so every path that writes rows (persist, mark read, a group's or a
    user's cascade, the admin) keeps it exact. The bell reads one row; no index on the
    notification tables has to mention is_read, so marking read is a HOT update.
    docs/storage.md has the measurements."""

    recipient = models.OneToOneField(
        User, to_field="email", db_column="recipient_email", primary_key=True,
        on_delete=models.CASCADE, related_name="+",
    )
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "notification_unread_count"


class Digest(models.Model):
    """One user's daily digest for one period (a day in settings.TIME_ZONE).

    The unique (user, period) key is what makes two runs, or two workers at once, send one
    email: each claims this row first (notifications/digest.py), and only the claimer sends.
    `attempts` fences a claim: a worker only finishes the attempt it claimed.
    """

    SENDING = "sending"  # claimed; the email may be on its way (or the worker died)
    SENT = "sent"  # the mail server accepted it and the listed notifications are marked
    FAILED = "failed"  # the mail server refused or was down; a retry may claim it again
    EMPTY = "empty"  # nothing unread and new when claimed; a later run may claim it again
    STATUS_CHOICES = [(s, s) for s in (SENDING, SENT, FAILED, EMPTY)]

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="digests")
    period = models.DateField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    attempts = models.IntegerField(default=0)
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # Notifications the sent email listed (and marked emailed).
    notification_count = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "notification_digest"
        constraints = [
            # One email per user and period: the claim is INSERT ... ON CONFLICT on this key.
            models.UniqueConstraint(fields=["user", "period"], name="digest_once_per_period")
        ]

    def __str__(self) -> str:
        return f"digest {self.period} for user {self.user_id}: {self.status}"


class DeadLetter(models.Model):
    """A message or event that can never become a notification, kept with its reason.

    Two stages write here: the bridge, for a rejected message the dead-letter topic cannot
    take (over the broker's size limit, say), and the persist task, for a schema-valid event
    that PostgreSQL refused. `value` holds the bytes as they came (the Kafka value, or the
    event's JSON), so an operator can read them, fix the cause, and replay
    (`manage.py dead_letters`).
    """

    BRIDGE = "bridge"
    PERSIST = "persist"
    STAGE_CHOICES = [(s, s) for s in (BRIDGE, PERSIST)]

    stage = models.CharField(max_length=16, choices=STAGE_CHOICES)
    reason = models.TextField()
    # Where the message was read (empty for an event that has no Kafka position any more).
    topic = models.CharField(max_length=255, blank=True, default="")
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    # The event id the message claims, as text (it may not be a valid UUID).
    event_id = models.CharField(max_length=64, blank=True, default="")
    key = models.BinaryField(null=True, blank=True)
    value = models.BinaryField()
    # One row per dead letter however often its batch is redelivered: INSERT ... ON CONFLICT
    # DO NOTHING on this (notifications/dead_letters.py says how it is made).
    fingerprint = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notification_dead_letter"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"dead letter {self.id} ({self.stage}): {self.reason[:80]}"
