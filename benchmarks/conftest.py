"""Benchmarks reuse the integration tests' services and processes."""

from tests.conftest import people  # noqa: F401
from tests.integration.conftest import (  # noqa: F401
    bridge,
    broker_url,
    kafka_topics,
    pipeline,
    process_env,
    relay,
    web,
    worker,
)
