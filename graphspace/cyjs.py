"""Graph JSON (Cytoscape.js elements) and style JSON: validation and normalisation.

Pure functions, following GraphSpace's CyJSFormat/GSGraph rules (graphspace-api.md 1.6).
"""

from __future__ import annotations

import copy
import re
from typing import Any

NODE_SHAPES = {
    "rectangle", "roundrectangle", "ellipse", "triangle", "pentagon", "hexagon", "heptagon",
    "octagon", "star", "diamond", "vee", "rhomboid",
}
ARROW_SHAPES = {"tee", "triangle", "triangle-tee", "triangle-backcurve", "square", "circle", "diamond", "none"}
LINE_STYLES = {"solid", "dotted", "dashed"}
BORDER_STYLES = {"solid", "dotted", "dashed", "double"}
_HEX = re.compile(r"^#[0-9a-fA-F]{3,6}$")


class GraphFormatError(ValueError):
    pass


def normalise_graph_json(graph_json: Any, *, name: str, tags: list[str]) -> dict[str, Any]:
    """Check a Cytoscape.js graph and fill in what GraphSpace fills in; raise on bad input."""
    if not isinstance(graph_json, dict):
        raise GraphFormatError("graph_json must be a JSON object.")
    graph = copy.deepcopy(graph_json)
    elements = graph.get("elements")
    if not isinstance(elements, dict):
        raise GraphFormatError("graph_json must contain an 'elements' object.")
    nodes, edges = elements.get("nodes"), elements.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise GraphFormatError("graph_json.elements must contain 'nodes' and 'edges' arrays.")
    ids: set[str] = set()
    for node in nodes:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise GraphFormatError("Every node must have data.id.")
        node_id = str(data["id"])
        if node_id in ids:
            raise GraphFormatError(f"Node id '{node_id}' is not unique.")
        ids.add(node_id)
        data.setdefault("name", node_id)
        data.setdefault("label", "")
    edge_names: dict[str, int] = {}
    for edge in edges:
        data = edge.get("data") if isinstance(edge, dict) else None
        if not isinstance(data, dict):
            raise GraphFormatError("Every edge must have data.")
        source, target = data.get("source"), data.get("target")
        for end in (source, target):
            if end is None or str(end) not in ids:
                raise GraphFormatError(f"Edge end '{end}' is not a node of the graph.")
        base = str(data.get("name") or f"{source}-{target}")
        count = edge_names.get(base, 0)
        edge_names[base] = count + 1
        data["name"] = base if count == 0 else f"{base}-{count}"
        data["is_directed"] = bool(data.get("is_directed", False))
    meta = graph.get("data")
    if not isinstance(meta, dict):
        meta = {}
    meta["name"] = name
    meta["tags"] = list(tags)
    graph["data"] = meta
    return graph


def validate_style_json(style_json: Any) -> dict[str, Any]:
    """Check a Cytoscape.js stylesheet's known enums and colours; raise on bad input."""
    if style_json in (None, ""):
        return {"style": []}
    if not isinstance(style_json, dict):
        raise GraphFormatError("style_json must be a JSON object.")
    entries = style_json.get("style", [])
    if not isinstance(entries, list):
        raise GraphFormatError("style_json.style must be an array.")
    for entry in entries:
        if not isinstance(entry, dict) or "selector" not in entry:
            raise GraphFormatError("Every style entry needs a selector.")
        props = entry.get("style", entry.get("css", {}))
        if not isinstance(props, dict):
            raise GraphFormatError("A style entry's style must be an object.")
        _check_props(props)
    return style_json


def _check_props(props: dict[str, Any]) -> None:
    checks = {
        "shape": NODE_SHAPES,
        "border-style": BORDER_STYLES,
        "line-style": LINE_STYLES,
        "source-arrow-shape": ARROW_SHAPES,
        "target-arrow-shape": ARROW_SHAPES,
        "mid-source-arrow-shape": ARROW_SHAPES,
        "mid-target-arrow-shape": ARROW_SHAPES,
    }
    for prop, allowed in checks.items():
        if prop in props and (not isinstance(props[prop], str) or props[prop] not in allowed):
            raise GraphFormatError(f"'{props[prop]}' is not a valid value for {prop}.")
    for prop, value in props.items():
        if isinstance(value, str) and value.startswith("#") and "color" in prop and not _HEX.match(value):
            raise GraphFormatError(f"'{value}' is not a valid hex colour for {prop}.")
