from django.contrib import admin
from django.urls import include, path

from graphspace import views
from graphspace.producer import OutboxBacklog
from ops import web_metrics

# The outbox as the database holds it, on web's /metrics: what no relay has published yet.
web_metrics.add_collector("outbox", OutboxBacklog())

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/notifications/", include("notifications.api_urls")),
    path("api/v1/", include("graphspace.api.urls")),
    path("notifications/", include("notifications.urls")),
    path("digest/", include("notifications.digest_urls")),
    # /healthz, /healthz/dependencies and /metrics (process infrastructure, ops/)
    path("", include("ops.urls")),
    # The GraphSpace pages: graphs, layouts, groups, members, sharing.
    path("", include("graphspace.pages")),
]
