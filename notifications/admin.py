from django.contrib import admin

from notifications.models import Digest, GroupNotification, NotificationCluster, OwnerNotification


@admin.register(OwnerNotification)
class OwnerNotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "owner", "type", "resource", "message", "is_read", "created_at")
    list_filter = ("type", "resource", "is_read")
    search_fields = ("owner__email", "message")


@admin.register(GroupNotification)
class GroupNotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "member", "group", "type", "resource", "message", "is_read", "created_at")
    list_filter = ("type", "resource", "is_read")
    search_fields = ("member__email", "message")


@admin.register(NotificationCluster)
class NotificationClusterAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "recipient", "topic", "type", "resource", "group", "actor_email", "size", "unread", "last_at")
    list_filter = ("topic", "type", "resource")
    search_fields = ("recipient__email", "actor_email")


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "user", "period", "status", "attempts", "notification_count", "sent_at")
    list_filter = ("status",)
    search_fields = ("user__email",)
