from django.contrib import admin
from django.urls import include, path

from graphspace import views

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/notifications/", include("notifications.api_urls")),
    path("api/v1/", include("graphspace.api.urls")),
    path("notifications/", include("notifications.urls")),
    path("digest/", include("notifications.digest_urls")),
    # /healthz and /metrics
    path("", include("graphspace.ops")),
    # The GraphSpace pages: graphs, layouts, groups, members, sharing.
    path("", include("graphspace.pages")),
]
