"""LOG_FORMAT=json: one JSON object per log line, for log shippers (settings.LOGGING).

Every line carries timestamp (ISO-8601 UTC), level, logger and message; whatever the call
passes in `extra` comes along under its own name, so
`log.warning("rejected ...", extra={"event_id": event_id})` becomes a line with an
"event_id" field that a search for that event finds. A traceback stays inside its line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# The attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # default=str: UUIDs, datetimes and the odd object (Django passes the request) as text.
        return json.dumps(entry, default=str, ensure_ascii=False)
