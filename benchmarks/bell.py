"""Open bells for the benchmarks: many real websockets through daphne, held by one asyncio loop
in a thread of its own, every frame stamped with the time it arrived (time.perf_counter, the
clock the benchmarks stamp their commits with)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.sessions.backends.db import SessionStore

from graphspace.models import User
from tests.integration.test_websocket import BellSocket

# Sockets opened at once: daphne accepts them one handshake at a time anyway.
OPENING = 50


@dataclass
class Frame:
    user_id: int
    at: float
    message: dict[str, Any]


def session_cookies(users: Iterable[User]) -> dict[int, str]:
    """A logged-in session per user, written as django.contrib.auth.login writes it (a test
    Client's force_login does the same, one request's worth of work per user)."""
    cookies: dict[int, str] = {}
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        # The first backend that can load a user back (django-axes' comes first and cannot).
        store[BACKEND_SESSION_KEY] = next(path for path in settings.AUTHENTICATION_BACKENDS
                                          if hasattr(load_backend(path), "get_user"))
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        assert store.session_key is not None
        cookies[user.pk] = f"{settings.SESSION_COOKIE_NAME}={store.session_key}"
    return cookies


class Bells:
    """Every open socket of the run, and every frame they received."""

    def __init__(self, web: str) -> None:
        self.web = web
        self.frames: list[Frame] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sockets: list[BellSocket] = []
        self.readers: list[asyncio.Task[None]] = []

    def open(self, cookies: dict[int, str]) -> None:
        asyncio.run_coroutine_threadsafe(self._open_all(cookies), self.loop).result(timeout=600)

    async def _open_all(self, cookies: dict[int, str]) -> None:
        url = f"ws://{self.web.removeprefix('http://')}/ws/notifications/"
        items = list(cookies.items())
        for start in range(0, len(items), OPENING):
            opened = await asyncio.gather(*(BellSocket.open(url, self.web, cookie) for _, cookie in items[start:start + OPENING]))
            for (user_id, _), socket in zip(items[start:start + OPENING], opened, strict=True):
                self.sockets.append(socket)
                self.readers.append(asyncio.ensure_future(self._read(user_id, socket)))

    async def _read(self, user_id: int, socket: BellSocket) -> None:
        while True:
            message = await socket.messages.get()
            self.frames.append(Frame(user_id, time.perf_counter(), message))

    def closed(self) -> int:
        """Sockets the server closed (none should be)."""
        return sum(1 for s in self.sockets if s.closed.done())

    def wait_for_frames(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_frames_of(self, base: int, total: int, timeout: float) -> bool:
        """Until some frame has carried (or counted in `more`) each of `total` items with
        resource ids from `base`, or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        carried: set[int] = set()
        told = seen = 0
        while True:
            frames = self.frames[seen:]
            seen += len(frames)
            for frame in frames:
                told += int(frame.message.get("more", 0))
                for item in frame.message.get("items", []):
                    if base <= int(item.get("resource_id", -1)) < base + total:
                        carried.add(int(item["resource_id"]))
            if len(carried) + told >= total:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        async def close_all() -> None:
            for reader in self.readers:
                reader.cancel()
            # A few at a time: daphne's channel layer has a bounded pool of Redis connections,
            # and a thousand group_discards at once exceed it (MaxConnectionsError).
            for start in range(0, len(self.sockets), OPENING):
                await asyncio.gather(*(s.close() for s in self.sockets[start:start + OPENING]), return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least p% of the samples at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
