"""Benchmarks reuse the integration tests' services and processes."""

from tests.conftest import people  # noqa: F401
from tests.integration.conftest import (  # noqa: F401
    broker_url,
    bridge,
    kafka_topics,
    pipeline,
    process_env,
    web,
    worker,
)
