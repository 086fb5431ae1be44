"""The OpenAPI document of the notifications API, served at /api/v1/notifications/openapi.json."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

FILTERS = [
    {"name": "state", "in": "query", "schema": {"enum": ["all", "unread"], "default": "all"}},
    {"name": "topic", "in": "query", "schema": {"enum": ["owner", "group", "watching"]},
     "description": "owner = My resources; group = group notifications; watching = what you watch"},
    {"name": "group_id", "in": "query", "schema": {"type": "integer"}},
    {"name": "type", "in": "query",
     "schema": {"enum": ["upload", "create", "update", "delete", "share", "unshare", "add", "remove",
                         "publish", "unpublish"]}},
    {"name": "resource", "in": "query", "schema": {"enum": ["graph", "layout", "group", "group_member"]}},
    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "free text in names, messages, actors"},
    {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "YYYY-MM-DD or ISO-8601"},
    {"name": "until", "in": "query", "schema": {"type": "string"}, "description": "YYYY-MM-DD (inclusive) or ISO-8601"},
]
PAGE = [
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]
ERROR = {"$ref": "#/components/responses/Error"}
CHANGED = {
    "200": {"description": "rows changed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Changed"}}}},
    "401": ERROR,
    "404": ERROR,
}


def _json(ref: str) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "GraphSpace notifications API", "version": "1"},
    "servers": [{"url": "/api/v1/notifications"}],
    "security": [{"basic": []}, {"session": []}],
    "paths": {
        "/": {"get": {"summary": "Clusters of the requesting user, newest first, by cursor",
                      "parameters": FILTERS + PAGE, "responses": {"200": _json("ClusterPage"), "400": ERROR, "401": ERROR}}},
        "/items": {"get": {"summary": "Notifications themselves (not clusters), both kinds merged newest first, by cursor",
                           "parameters": FILTERS + PAGE, "responses": {"200": _json("ItemPage"), "400": ERROR, "401": ERROR}}},
        "/count": {"get": {"summary": "Unread count", "responses": {"200": _json("Count"), "401": ERROR}}},
        "/read": {"post": {"summary": "Mark read every item of every cluster the filters show",
                           "parameters": FILTERS, "responses": CHANGED}},
        "/clusters/{cluster_id}": {"get": {
            "summary": "Expand a cluster: its items, newest first, by cursor",
            "parameters": [{"name": "cluster_id", "in": "path", "required": True, "schema": {"type": "integer"}}] + PAGE,
            "responses": {"200": _json("ClusterItems"), "401": ERROR, "404": ERROR}}},
        "/clusters/{cluster_id}/read": {"post": {
            "summary": "Mark exactly the items of this cluster read",
            "parameters": [{"name": "cluster_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": CHANGED}},
        "/{topic}/{item_id}": {"get": {
            "summary": "One notification",
            "parameters": [{"name": "topic", "in": "path", "required": True, "schema": {"enum": ["owner", "group", "watching"]}},
                           {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": _json("Item"), "401": ERROR, "404": ERROR}}},
        "/{topic}/{item_id}/read": {"post": {
            "summary": "Mark one notification read",
            "parameters": [{"name": "topic", "in": "path", "required": True, "schema": {"enum": ["owner", "group", "watching"]}},
                           {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": CHANGED}},
        "/watches": {
            "get": {"summary": "The graphs and layouts the requesting user watches",
                    "responses": {"200": _json("Watches"), "401": ERROR}},
            "post": {"summary": "Watch a graph or layout you can read and do not own (idempotent)",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/WatchRequest"}}}},
                     "responses": {"200": _json("Watch"), "400": ERROR, "401": ERROR, "404": ERROR}},
        },
        "/watches/{resource}/{resource_id}": {"delete": {
            "summary": "Stop watching (idempotent)",
            "parameters": [{"name": "resource", "in": "path", "required": True, "schema": {"enum": ["graph", "layout"]}},
                           {"name": "resource_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": _json("Unwatched"), "401": ERROR, "404": ERROR}}},
        "/preferences": {
            "get": {"summary": "Per kind and type of notification: on the site, in the email digest; muted groups",
                    "responses": {"200": _json("Preferences"), "401": ERROR}},
            "put": {"summary": "Set the given preferences (a set, not a toggle; what is not given is unchanged)",
                    "requestBody": {"content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/PreferencesUpdate"}}}},
                    "responses": {"200": _json("Preferences"), "400": ERROR, "401": ERROR}},
        },
        "/groups/{group_id}/mute": {"put": {
            "summary": "Mute or unmute a group you are in: a muted group's events create nothing for you but your own removal",
            "parameters": [{"name": "group_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mute"}}}},
            "responses": {"200": _json("Mute"), "400": ERROR, "401": ERROR, "404": ERROR}}},
        "/settings": {
            "get": {"summary": "Email digest opt-in", "responses": {"200": _json("Settings"), "401": ERROR}},
            "put": {"summary": "Set the email digest opt-in (a set, not a toggle)",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Settings"}}}},
                    "responses": {"200": _json("Settings"), "400": ERROR, "401": ERROR}},
        },
    },
    "components": {
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                            "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"}},
        "responses": {"Error": {"description": "GraphSpace error body", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"status_code": {"type": "integer"}, "error_code": {"type": "integer"},
                                             "error_message": {"type": "string"}, "error_details": {"type": "string"},
                                             "http_request": {"type": "string"}}}}}}},
        "schemas": {
            "Item": {"type": "object", "properties": {
                "id": {"type": "string", "examples": ["group-12"]}, "pk": {"type": "integer"},
                "topic": {"enum": ["owner", "group", "watching"]}, "type": {"type": "string"}, "resource": {"type": "string"},
                "resource_id": {"type": "integer"}, "resource_name": {"type": "string"},
                "actor_email": {"type": ["string", "null"]}, "group_id": {"type": ["integer", "null"]},
                "group_name": {"type": ["string", "null"]}, "message": {"type": "string"},
                "text": {"type": "string", "description": "worded for the reader: 'You shared graph XYZ with Lab'"},
                "is_read": {"type": "boolean"}, "cluster_id": {"type": "integer"},
                "created_at": {"type": "string", "format": "date-time"}, "occurred_at": {"type": "string", "format": "date-time"},
                "url": {"type": "string"}}},
            "Cluster": {"type": "object", "properties": {
                "id": {"type": "integer"}, "topic": {"type": "string"}, "type": {"type": "string"},
                "resource": {"type": "string"}, "group_id": {"type": ["integer", "null"]},
                "group_name": {"type": ["string", "null"]}, "actor_email": {"type": ["string", "null"]},
                "size": {"type": "integer"}, "unread": {"type": "integer"}, "is_read": {"type": "boolean"},
                "text": {"type": "string", "examples": ["5 graphs uploaded"]}, "preview": {"type": "string"},
                "first_at": {"type": "string"}, "last_at": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
            "ClusterPage": {"type": "object", "properties": {
                "clusters": {"type": "array", "items": {"$ref": "#/components/schemas/Cluster"}},
                "next_cursor": {"type": ["string", "null"]}, "unread_count": {"type": "integer"}}},
            "ItemPage": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "next_cursor": {"type": ["string", "null"]}, "unread_count": {"type": "integer"}}},
            "ClusterItems": {"type": "object", "properties": {
                "cluster": {"$ref": "#/components/schemas/Cluster"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "next_cursor": {"type": ["string", "null"]}}},
            "Count": {"type": "object", "properties": {"unread_count": {"type": "integer"}}},
            "Changed": {"type": "object", "properties": {"changed": {"type": "integer"}, "unread_count": {"type": "integer"}}},
            "Settings": {"type": "object", "properties": {"receive_notification_email": {"type": "boolean"}}},
            "WatchRequest": {"type": "object", "required": ["resource", "resource_id"], "properties": {
                "resource": {"enum": ["graph", "layout"]}, "resource_id": {"type": "integer", "minimum": 0}}},
            "Watch": {"type": "object", "properties": {
                "resource": {"enum": ["graph", "layout"]}, "resource_id": {"type": "integer"},
                "graph_id": {"type": "integer"}, "since": {"type": "string", "format": "date-time"}}},
            "Watches": {"type": "object", "properties": {
                "watches": {"type": "array", "items": {"$ref": "#/components/schemas/Watch"}}}},
            "Unwatched": {"type": "object", "properties": {"unwatched": {"type": "boolean"}}},
            "Channels": {"type": "object", "properties": {"site": {"type": "boolean"}, "email": {"type": "boolean"}}},
            "Preferences": {"type": "object", "properties": {
                "receive_notification_email": {"type": "boolean"},
                "kinds": {"type": "object", "description": "kind (owner, group, watching) -> type of event -> channels",
                          "additionalProperties": {"type": "object",
                                                   "additionalProperties": {"$ref": "#/components/schemas/Channels"}}},
                "muted_groups": {"type": "array", "items": {"type": "integer"}}}},
            "PreferencesUpdate": {"type": "object", "properties": {
                "receive_notification_email": {"type": "boolean"},
                "kinds": {"type": "object", "additionalProperties": {
                    "type": "object", "additionalProperties": {"$ref": "#/components/schemas/Channels"}}}}},
            "Mute": {"type": "object", "required": ["muted"], "properties": {
                "group_id": {"type": "integer"}, "muted": {"type": "boolean"}}},
        },
    },
}


def document(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SPEC)
