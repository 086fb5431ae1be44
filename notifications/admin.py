from django.contrib import admin

from notifications.models import GroupNotification, OwnerNotification


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
