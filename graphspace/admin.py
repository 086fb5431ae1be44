from django.contrib import admin

from graphspace.models import Graph, Group, GroupGraph, GroupMember, Layout, User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("email", "is_admin", "receive_notification_email", "created_at")
    search_fields = ("email",)
    exclude = ("password",)


@admin.register(Graph)
class GraphAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "name", "owner", "is_public", "updated_at")
    search_fields = ("name", "owner__email")


admin.site.register(Layout)
admin.site.register(Group)
admin.site.register(GroupMember)
admin.site.register(GroupGraph)
