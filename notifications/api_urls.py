"""Routes of the notifications API (see openapi.py for the document that describes them)."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from apiedge import http
from notifications import api, openapi, sessions


def api_view(methods: dict[str, http.Handler]) -> Callable[..., HttpResponse]:
    """apiedge's view, with the notifications API's answers to domain errors, and a session's
    login read with plain SQL (notifications/sessions.py: authenticate); HTTP Basic, and every
    login that is not a plain valid one, goes through apiedge and Django as before."""
    view = http.api_view(methods, translate=api.translate)

    @csrf_exempt
    @wraps(view)
    def with_session(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if "HTTP_AUTHORIZATION" not in request.META:
            sessions.authenticate(request)
        return view(request, **kwargs)

    return with_session


urlpatterns = [
    path("", api_view({"GET": api.list_clusters})),
    path("items", api_view({"GET": api.list_items})),
    path("count", api_view({"GET": api.count})),
    path("read", api_view({"POST": api.read_all})),
    path("settings", api_view({"GET": api.get_settings, "PUT": api.put_settings})),
    path("openapi.json", openapi.document),
    path("watches", api_view({"GET": api.list_watches, "POST": api.add_watch})),
    re_path(r"^watches/(?P<resource>graph|layout)/(?P<resource_id>\d{1,30})$", api_view({"DELETE": api.remove_watch})),
    path("preferences", api_view({"GET": api.get_preferences, "PUT": api.put_preferences})),
    path("groups/<int:group_id>/mute", api_view({"PUT": api.put_mute})),
    path("clusters/<int:cluster_id>", api_view({"GET": api.get_cluster})),
    path("clusters/<int:cluster_id>/read", api_view({"POST": api.read_cluster})),
    re_path(r"^(?P<topic>owner|group|watching)/(?P<item_id>\d+)$", api_view({"GET": api.get_item})),
    re_path(r"^(?P<topic>owner|group|watching)/(?P<item_id>\d+)/read$", api_view({"POST": api.read_item})),
]
