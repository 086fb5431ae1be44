"""The official client, graphspace-python 1.3.1, unchanged, against our API v1 over https.

The client always speaks https, so the web process (daphne, started through
scripts/process.sh like every process) serves TLS with a self-signed certificate that the
test trusts through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import collections
import collections.abc
import fractions
import math
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from notifications.models import GroupNotification, OwnerNotification
from tests.conftest import PASSWORD, People
from tests.integration.conftest import ARTIFACTS, RUN_ID, Process, free_port, wait_for

# networkx 1.11 (which the client needs) predates Python 3.10; give it the names it expects.
fractions.gcd = math.gcd  # type: ignore[attr-defined]
for _name in ("Mapping", "MutableMapping", "Iterable", "Sequence", "Set", "Callable", "Hashable"):
    setattr(collections, _name, getattr(collections.abc, _name))

from graphspace_python.api.client import GraphSpace  # noqa: E402
from graphspace_python.api.errors import LayoutNameAlreadyExists, UserNotAuthorised  # noqa: E402
from graphspace_python.graphs.classes.gsgraph import GSGraph  # noqa: E402
from graphspace_python.graphs.classes.gsgroup import GSGroup  # noqa: E402
from graphspace_python.graphs.classes.gslayout import GSLayout  # noqa: E402


@pytest.fixture(scope="session")
def tls_web(process_env: dict[str, str]) -> Iterator[str]:
    folder = ARTIFACTS / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    port = free_port()
    web = Process("web", {**process_env, "WEB_TLS_CERT": str(cert), "WEB_TLS_KEY": str(key),
                          "WEB_PORT": str(port)}, label="web-tls")
    web.start(ready="Listening on")
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
    yield f"localhost:{port}"
    web.stop()


def client(host: str, email: str) -> GraphSpace:
    gs = GraphSpace(email, PASSWORD)
    gs.set_api_host(host)
    return gs


def sample_graph(name: str) -> GSGraph:
    graph = GSGraph()
    graph.set_name(name)
    graph.set_tags(["sample"])
    graph.add_node("a", popup="node a", label="A")
    graph.add_node("b", popup="node b", label="B")
    graph.add_edge("a", "b", directed=True, popup="a to b")
    graph.add_node_style("a", shape="ellipse", color="green", width=60, height=60)
    graph.add_edge_style("a", "b", directed=True, edge_style="dotted")
    return graph


def test_every_client_call_works_and_notifies(tls_web: str, people: People, pipeline: None) -> None:
    alice = client(tls_web, "alice@example.com")
    bob = client(tls_web, "bob@example.com")

    graph = alice.post_graph(sample_graph(f"Client graph {RUN_ID}"))
    assert graph.id and graph.name == f"Client graph {RUN_ID}" and graph.owner_email == "alice@example.com"
    assert alice.get_graph(graph_id=graph.id).name == graph.name
    assert alice.get_graph(graph_name=graph.name).id == graph.id
    assert alice.get_graph(graph_name="no such graph") is None
    assert [g.id for g in alice.get_my_graphs()] == [graph.id]
    assert alice.get_public_graphs() == []

    assert alice.publish_graph(graph_id=graph.id).is_public == 1
    assert [g.id for g in bob.get_public_graphs(tags=["sample"])] == [graph.id]
    assert alice.unpublish_graph(graph_id=graph.id).is_public == 0
    updated = sample_graph(graph.name)
    updated.add_node("c", label="C")
    updated = alice.update_graph(updated, graph_id=graph.id)
    assert sorted(n["data"]["id"] for n in updated.graph_json["elements"]["nodes"]) == ["a", "b", "c"]

    layout = GSLayout()
    layout.set_name("Client layout")
    layout.set_node_position("a", y=38.5, x=67.3)
    layout.set_is_shared(0)
    saved = alice.post_graph_layout(layout, graph_id=graph.id)
    assert saved.id and saved.graph_id == graph.id
    with pytest.raises(LayoutNameAlreadyExists):
        alice.post_graph_layout(layout, graph_id=graph.id)
    assert alice.get_graph_layout(layout_id=saved.id, graph_id=graph.id).name == "Client layout"
    assert alice.get_graph_layout(layout_name="Client layout", graph_id=graph.id).id == saved.id
    assert [item.id for item in alice.get_my_graph_layouts(graph_id=graph.id)] == [saved.id]
    assert alice.set_default_graph_layout(graph_id=graph.id, layout_id=saved.id).default_layout_id == saved.id
    assert alice.unset_default_graph_layout(graph_id=graph.id).default_layout_id is None

    group = alice.post_group(GSGroup(name=f"Client lab {RUN_ID}", description="people"))
    assert group.id and len(group.invite_code) == 10
    assert alice.get_group(group_id=group.id).name == group.name
    assert alice.get_group(group_name=group.name).id == group.id
    assert [g.id for g in alice.get_my_groups()] == [group.id]
    alice.add_group_member(member_email="bob@example.com", group_id=group.id)
    assert sorted(m.email for m in alice.get_group_members(group_id=group.id)) == [
        "alice@example.com", "bob@example.com"]
    assert [g.id for g in bob.get_all_groups()] == [group.id]
    assert alice.update_group(GSGroup(name=group.name, description="new words"), group_id=group.id).description == "new words"

    alice.share_graph(graph_id=graph.id, group_id=group.id)
    assert [g.id for g in bob.get_shared_graphs()] == [graph.id]
    assert [g.id for g in alice.get_group_graphs(group_id=group.id)] == [graph.id]
    layout.set_is_shared(1)
    assert alice.update_graph_layout(layout, layout_id=saved.id, graph_id=graph.id).is_shared == 1
    assert [item.id for item in bob.get_shared_graph_layouts(graph_id=graph.id)] == [saved.id]
    with pytest.raises(UserNotAuthorised):
        bob.delete_graph(graph_id=graph.id)
    alice.unshare_graph(graph_id=graph.id, group_id=group.id)
    alice.delete_group_member(member_id=people.bob.id, group_id=group.id)
    assert "Successfully deleted layout" in alice.delete_graph_layout(layout_id=saved.id, graph_id=graph.id)
    assert "Successfully deleted graph" in alice.delete_graph(graph_id=graph.id)
    assert "Successfully deleted group" in alice.delete_group(group_id=group.id)

    # Every change the client made is a notification, updates included (the original
    # needed owner_email in the body and announced nothing for the client's updates).
    def owner_types() -> list[tuple[str, str]]:
        return sorted(OwnerNotification.objects.values_list("type", "resource"))

    expected = sorted([
        ("upload", "graph"), ("update", "graph"), ("update", "graph"), ("update", "graph"),
        ("update", "graph"), ("update", "graph"), ("create", "layout"), ("create", "group"),
        ("update", "group"), ("delete", "layout"), ("delete", "graph"), ("delete", "group"),
    ])
    wait_for(lambda: len(owner_types()) >= len(expected), what="the client's owner notifications")
    time.sleep(0.5)
    assert owner_types() == expected
    assert not OwnerNotification.objects.exclude(owner_id="alice@example.com").exists()
    # The group's history went with the group.
    assert not GroupNotification.objects.filter(group_id=group.id).exists()


def test_bad_credentials_get_graphspace_s_json_401(tls_web: str, people: People, transactional_db: Any) -> None:
    import requests

    response = requests.get(f"https://{tls_web}/api/v1/graphs/?owner_email=alice@example.com",
                            auth=("alice@example.com", "wrong"), headers={"Accept": "application/json"})
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == 1005 and body["status_code"] == 401
    assert body["http_request"].startswith("GET /api/v1/graphs/")
