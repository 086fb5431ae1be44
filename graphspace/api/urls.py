"""API v1 routes. The client builds some paths with a trailing slash and some without;
each route takes both."""

from collections.abc import Callable

from django.http import HttpResponse
from django.urls import re_path

from apiedge import http
from graphspace.api import errors, graphs, groups


def api_view(methods: dict[str, http.Handler]) -> Callable[..., HttpResponse]:
    """apiedge's view, with API v1's answers to the domain errors a handler lets through."""
    return http.api_view(methods, translate=errors.translate)


ID = r"(?P<{}>\d+)"

urlpatterns = [
    re_path(r"^graphs/?$", api_view({"GET": graphs.list_graphs, "POST": graphs.create_graph})),
    re_path(
        rf"^graphs/{ID.format('graph_id')}/?$",
        api_view({"GET": graphs.get_graph, "PUT": graphs.update_graph, "DELETE": graphs.delete_graph}),
    ),
    re_path(
        rf"^graphs/{ID.format('graph_id')}/layouts/?$",
        api_view({"GET": graphs.list_layouts, "POST": graphs.create_layout}),
    ),
    re_path(
        rf"^graphs/{ID.format('graph_id')}/layouts/{ID.format('layout_id')}/?$",
        api_view({"GET": graphs.get_layout, "PUT": graphs.update_layout, "DELETE": graphs.delete_layout}),
    ),
    re_path(
        rf"^graphs/{ID.format('graph_id')}/groups/?$",
        api_view({"GET": groups.list_graph_groups, "POST": groups.share_graph_with_group}),
    ),
    re_path(
        rf"^graphs/{ID.format('graph_id')}/groups/{ID.format('group_id')}/?$",
        api_view({"DELETE": groups.unshare_graph_from_group}),
    ),
    re_path(r"^groups/?$", api_view({"GET": groups.list_groups, "POST": groups.create_group})),
    re_path(
        rf"^groups/{ID.format('group_id')}/?$",
        api_view({"GET": groups.get_group, "PUT": groups.update_group, "DELETE": groups.delete_group}),
    ),
    re_path(
        rf"^groups/{ID.format('group_id')}/members/?$",
        api_view({"GET": groups.list_members, "POST": groups.add_member}),
    ),
    re_path(
        rf"^groups/{ID.format('group_id')}/members/{ID.format('member_id')}/?$",
        api_view({"DELETE": groups.remove_member}),
    ),
    re_path(
        rf"^groups/{ID.format('group_id')}/graphs/?$",
        api_view({"GET": groups.list_group_graphs, "POST": groups.share_graph}),
    ),
    re_path(
        rf"^groups/{ID.format('group_id')}/graphs/{ID.format('graph_id')}/?$",
        api_view({"DELETE": groups.unshare_graph}),
    ),
]
