"""The JSON shapes of API v1 (graphspace-api.md 1.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from graphspace.models import Graph, Group, Layout, User


def timestamp(value: datetime) -> str:
    """GraphSpace's timestamps: naive isoformat (UTC here)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def graph_summary(graph: Graph) -> dict[str, Any]:
    return {
        "id": graph.id,
        "owner_email": graph.owner.email,
        "name": graph.name,
        "is_public": int(graph.is_public),
        "tags": list(graph.tags),
        "default_layout_id": graph.default_layout_id,
        "created_at": timestamp(graph.created_at),
        "updated_at": timestamp(graph.updated_at),
    }


def graph_full(graph: Graph) -> dict[str, Any]:
    return {**graph_summary(graph), "graph_json": graph.graph_json, "style_json": graph.style_json}


def layout(item: Layout) -> dict[str, Any]:
    # The client json.loads both fields: GraphSpace stores and returns them as strings.
    return {
        "id": item.id,
        "name": item.name,
        "owner_email": item.owner.email,
        "graph_id": item.graph_id,
        "positions_json": json.dumps(item.positions_json),
        "style_json": json.dumps(item.style_json),
        "is_shared": int(item.is_shared),
        "created_at": timestamp(item.created_at),
        "updated_at": timestamp(item.updated_at),
    }


def group(item: Group, total_graphs: int | None = None, total_members: int | None = None) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "invite_code": item.invite_code,
        "owner_email": item.owner.email,
        "description": item.description,
        "total_graphs": total_graphs if total_graphs is not None else item.graphs.count(),
        "total_members": total_members if total_members is not None else item.members.count(),
        "created_at": timestamp(item.created_at),
        "updated_at": timestamp(item.updated_at),
    }


def member(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
    }
