"""A mail server for local runs (`make run` starts it): accepts every message, prints its
subject and recipients, and saves it whole as an .eml file under var/mail/.

    python -m notifications.smtp_catcher      # 127.0.0.1:1025, or SMTP_CATCHER_HOST / EMAIL_PORT

Nothing is relayed: no email ever leaves the machine.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ROOT = Path(__file__).resolve().parent.parent
MAIL_DIR = ROOT / "var" / "mail"


class SaveAndPrint:
    """aiosmtpd handler: every message is accepted, printed and saved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        message = message_from_bytes(raw, policy=default_policy)  # type: ignore[arg-type]
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{os.getpid()}-{self.count:05d}.eml"
        path.write_bytes(raw)
        print(f"mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']} -> {path}", flush=True)
        return "250 Message accepted for delivery"


def serve(host: str, port: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveAndPrint(folder), hostname=host, port=port)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.start()
    print(f"smtp catcher: listening on {host}:{port}, saving to {folder}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


def main() -> None:
    host = os.environ.get("SMTP_CATCHER_HOST", "127.0.0.1")
    port = int(os.environ.get("EMAIL_PORT", "1025"))
    serve(host, port, Path(os.environ.get("SMTP_CATCHER_DIR", MAIL_DIR)))


if __name__ == "__main__":
    main()
