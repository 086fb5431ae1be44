"""LOG_FORMAT=json: one JSON object per line, with the event id when the call passes one."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ops.log_format import JsonFormatter


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.log_format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_line_is_one_json_object_with_timestamp_level_logger_and_message(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("batch of %d events submitted", 3)
    (entry,) = lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tests.log_format"
    assert entry["message"] == "batch of 3 events submitted"
    # ISO-8601 in UTC, to the millisecond.
    assert entry["timestamp"].endswith("+00:00")
    assert "." in entry["timestamp"]
    assert "event_id" not in entry


def test_the_event_id_passed_in_extra_becomes_a_field(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    event_id = uuid.uuid4()
    logger.warning("rejected message owner[0]@7: bad", extra={"event_id": event_id, "partition": 0, "offset": 7})
    (entry,) = lines(stream)
    assert entry["event_id"] == str(event_id)
    assert (entry["partition"], entry["offset"]) == (0, 7)


def test_an_extra_that_is_none_is_left_out(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("rejected message owner[0]@8: not JSON", extra={"event_id": None})
    assert "event_id" not in lines(stream)[0]


def test_a_traceback_and_newlines_stay_inside_one_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("commit failed")
    except RuntimeError:
        logger.exception("bridge step failed;\nretrying")
    assert len(stream.getvalue().splitlines()) == 1
    (entry,) = lines(stream)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "bridge step failed;\nretrying"
    assert "RuntimeError: commit failed" in entry["exc_info"]


def test_objects_that_json_cannot_encode_are_written_as_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    class Request:
        def __str__(self) -> str:
            return "<ASGIRequest: GET '/healthz'>"

    logger.error("Internal Server Error: /healthz", extra={"request": Request(), "status_code": 500})
    (entry,) = lines(stream)
    assert entry["request"] == "<ASGIRequest: GET '/healthz'>"
    assert entry["status_code"] == 500


def test_settings_select_the_json_formatter_by_log_format() -> None:
    from django.conf import settings

    assert settings.LOGGING["formatters"]["json"]["()"] == "ops.log_format.JsonFormatter"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == settings.LOG_FORMAT
