"""The GraphSpace host: users, graphs, layouts, groups, members and sharing."""

from __future__ import annotations

import secrets
import string
import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.functions import RandomUUID
from django.db import models, transaction


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_admin", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A GraphSpace user; GraphSpace identifies people by email."""

    email = models.EmailField(max_length=254, unique=True)
    is_admin = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # The seed's opt-in for the daily digest; off by default.
    receive_notification_email = models.BooleanField(default=False)
    # Carried by the digest's unsubscribe links, which work only while it is unchanged. A
    # trigger gives it a new random value whenever receive_notification_email changes, by any
    # path (graphspace/migrations/0004_user_digest_nonce.py), so older links stop working;
    # being random and never shown but in the user's own emails, it also keeps a link from
    # being forged by whoever knows the SECRET_KEY.
    digest_nonce = models.UUIDField(default=uuid.uuid4, db_default=RandomUUID(), editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    class Meta:
        db_table = "user"

    def __str__(self) -> str:
        return self.email

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        # Lock the row before Django collects what the delete cascades to, so a persist task
        # writing this user's notifications (it holds a key-share lock on the user) finishes
        # first and its rows are collected too.
        with transaction.atomic():
            list(User.objects.select_for_update().filter(pk=self.pk).values_list("pk"))
            return super().delete(*args, **kwargs)

    @property
    def is_staff(self) -> bool:
        return self.is_admin


class Graph(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="graphs")
    name = models.CharField(max_length=256)
    is_public = models.BooleanField(default=False)
    graph_json = models.JSONField()
    style_json = models.JSONField(default=dict)
    tags = models.JSONField(default=list)
    default_layout = models.ForeignKey(
        "Layout", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "graph"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="graph_unique_owner_name")
        ]

    def __str__(self) -> str:
        return self.name


class Layout(models.Model):
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE, related_name="layouts")
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="layouts")
    name = models.CharField(max_length=256)
    is_shared = models.BooleanField(default=False)
    positions_json = models.JSONField(default=dict)
    style_json = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "layout"
        # Layouts are deleted for real (the original's soft delete kept the name taken).
        constraints = [
            models.UniqueConstraint(
                fields=["name", "graph", "owner"], name="layout_unique_name_graph_owner"
            )
        ]

    def __str__(self) -> str:
        return self.name


def new_invite_code() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


class Group(models.Model):
    name = models.CharField(max_length=256)
    description = models.TextField(blank=True, default="")
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="owned_groups")
    invite_code = models.CharField(max_length=10, default=new_invite_code)
    # Bumped by every add and remove of a member (see MembershipSpan).
    membership_seq = models.BigIntegerField(default=0)
    members = models.ManyToManyField(User, through="GroupMember", related_name="member_groups")
    graphs = models.ManyToManyField(Graph, through="GroupGraph", related_name="shared_groups")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "group"
        constraints = [
            models.UniqueConstraint(fields=["name", "owner"], name="group_unique_name_owner")
        ]

    def __str__(self) -> str:
        return self.name


class GroupMember(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "group_to_user"
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="group_member_unique")
        ]


class GroupGraph(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    graph = models.ForeignKey(Graph, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "group_to_graph"
        constraints = [
            models.UniqueConstraint(fields=["group", "graph"], name="group_graph_unique")
        ]


class MembershipSpan(models.Model):
    """When a user was a member of a group, in the group's own sequence of membership changes.

    Every add and remove bumps `Group.membership_seq`; a member's span starts at the number
    their add took and ends at the number their removal took. A group event carries the
    number current when its action committed, so the persist task finds the members of that
    moment, however late it runs (notifications/persist.py). `GroupMember` stays the current
    membership that pages and permissions read.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    joined_seq = models.BigIntegerField()
    # Null while the user is a member.
    left_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "group_membership_span"
        indexes = [
            # "The members of group G at number S": every span of G that started by S.
            models.Index(fields=["group", "joined_seq"], name="membership_span_group"),
        ]
        constraints = [
            # One open span per member: adding someone who is a member already is refused
            # by the action before it gets here.
            models.UniqueConstraint(
                fields=["group", "user"], condition=models.Q(left_seq__isnull=True), name="membership_span_open_once"
            )
        ]


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it announces (the
    transactional outbox). The relay (`manage.py relay_outbox`) publishes the rows to Kafka in
    id order and deletes each once the broker has acknowledged it, so a change and its event
    commit or vanish together and neither a Kafka outage nor a dead web process loses one."""

    topic = models.CharField(max_length=16)
    # The Kafka message key (graphspace/producer.py: message_key); events of one key are
    # published in order.
    key = models.CharField(max_length=300)
    event_id = models.UUIDField()
    # The Kafka message value: UTF-8 JSON, exactly as it will be published.
    value = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "event_outbox"
