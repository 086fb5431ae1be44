"""graphspace/asgi.py's RequestThreads: each request runs whole in one thread (its
request_started and request_finished signals and its middleware chain and view), the threads are
reused, and no more requests run at once than there are threads. Requests here are
unauthenticated calls of the notifications API (a 401 that needs no database)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.http import StreamingHttpResponse

from graphspace.asgi import RequestThreads

PATH = "/api/v1/notifications/count"


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


async def call(app: RequestThreads, path: str = PATH) -> int:
    return int((await messages(app, path))[0]["status"])


async def messages(app: RequestThreads, path: str = PATH) -> list[dict[str, Any]]:
    """What the app sends for one GET whose client never leaves."""
    sent: list[dict[str, Any]] = []
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(path), receive, send)
    return sent


class Seen:
    """Which thread ran each part of each request, by the order the requests started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.chain: list[str] = []

    def on_started(self, **kwargs: Any) -> None:
        with self.lock:
            self.started.append(threading.current_thread().name)

    def on_finished(self, **kwargs: Any) -> None:
        with self.lock:
            self.finished.append(threading.current_thread().name)


@pytest.fixture
def seen() -> Iterator[Seen]:
    s = Seen()
    request_started.connect(s.on_started)
    request_finished.connect(s.on_finished)
    yield s
    request_started.disconnect(s.on_started)
    request_finished.disconnect(s.on_finished)


def watch_chain(app: RequestThreads, seen: Seen, inside: Callable[[], None] = lambda: None) -> None:
    chain = app._middleware_chain

    def watched(request: Any) -> Any:
        with seen.lock:
            seen.chain.append(threading.current_thread().name)
        inside()
        return chain(request)

    app._middleware_chain = watched


def test_a_request_runs_whole_in_one_reused_thread(seen: Seen) -> None:
    app = RequestThreads(2)
    watch_chain(app, seen)

    async def five() -> list[int]:
        return [await call(app) for _ in range(5)]

    assert asyncio.run(five()) == [401] * 5
    # One after another: the same thread each time (the one that finished last), and every part
    # of a request in it.
    assert len(set(seen.started)) == 1
    assert seen.started == seen.chain == seen.finished
    assert seen.started[0].startswith("request-")


def test_no_more_requests_run_at_once_than_there_are_threads(seen: Seen) -> None:
    app = RequestThreads(2)
    both = threading.Barrier(2, timeout=20)
    running = most = calls = 0
    count = threading.Lock()

    def inside() -> None:
        nonlocal running, most, calls
        with count:
            calls += 1
            mine = calls
            running += 1
            most = max(most, running)
        if mine <= 2:
            # The first two meet here, so two requests do run at once (with one thread the
            # first would wait here until the barrier breaks, and the test fail).
            both.wait()
        with count:
            running -= 1

    watch_chain(app, seen, inside)

    async def six() -> list[int]:
        return list(await asyncio.gather(*(call(app) for _ in range(6))))

    assert asyncio.run(six()) == [401] * 6
    assert most == 2
    assert set(seen.chain) == {"request-0_0", "request-1_0"}


def count_hops(app: RequestThreads) -> list[str]:
    """Every call handed to a request thread, by what it ran."""
    hops: list[str] = []
    assert app._idle is not None
    for executor in list(app._idle._queue):  # type: ignore[attr-defined]
        submit = executor.submit

        def counted(fn: Any, *args: Any, _submit: Any = submit, **kwargs: Any) -> Any:
            hops.append(getattr(fn, "__qualname__", repr(fn)))
            return _submit(fn, *args, **kwargs)

        executor.submit = counted
    return hops


def test_a_request_is_one_hop_to_its_thread_and_a_streamed_one_two(seen: Seen) -> None:
    app = RequestThreads(1)

    async def once(path: str = PATH) -> int:
        return await call(app, path)

    asyncio.run(once())  # makes the threads
    hops = count_hops(app)
    assert asyncio.run(once()) == 401
    # The signal, the request, the chain and view and the close of its answer: one hop.
    assert len(hops) == 1
    assert seen.started[-1] == seen.finished[-1]

    async def parts() -> Any:
        yield b"a"
        yield b"b"

    def streamed(request: Any) -> Any:
        seen.chain.append(threading.current_thread().name)
        return StreamingHttpResponse(parts())

    app._middleware_chain = streamed
    hops.clear()
    before = len(seen.finished)
    sent = asyncio.run(messages(app))
    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == b"ab"
    # Its body is read while it is sent; then it is closed (request_finished) in its thread.
    assert len(seen.finished) == before + 1 and seen.finished[-1] == seen.chain[-1]
    assert len(hops) == 2
