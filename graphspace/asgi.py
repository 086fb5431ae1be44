"""ASGI entry point (uvicorn, started by graphspace/web.py): HTTP with the static files, and the
notification websocket.

HTTP goes through `RequestThreads`, Django's ASGI handler with two changes that cut its CPU per
request by more than half (docs/web.md has the profiles and figures):
- Every middleware and view of the site is sync, so the middleware chain is built sync and a
  request crosses into a thread once. Django's own handler builds an async chain, in which each
  sync middleware method (sessions, auth, CSRF, messages, CSP, axes...) is one more
  `sync_to_async` hop: about fifteen per request.
- A request's sync code runs in one of a fixed set of threads, reused (as a threaded WSGI server
  does), instead of a thread created for the request and joined by yet another thread after it.
  There are as many as the database pool has connections (DATABASE_POOL_MAX_SIZE), so a request
  never waits for a connection; more requests wait for a thread, in the event loop.
- A request's sync parts (the request_started signal, the request object, the chain and view,
  and for a response that is not streamed its close and request_finished) run in that one hop;
  Django's handler made three (the signal, the chain, the close) and two tasks per request to
  watch for a client leaving, which a sync view cannot notice anyway.
Each request still runs whole in one thread, as Django's sync code expects: asgiref's
ThreadSensitiveContext, given the thread's executor, sends every thread-sensitive call of the
request (a streamed response's close too) to it.
"""

from __future__ import annotations

import asyncio
import gc
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")

# Django must be set up before the routing imports the consumers and their models.
get_asgi_application()

from asgiref.sync import ThreadSensitiveContext, sync_to_async  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import FileResponse, HttpRequest, HttpResponseBase  # noqa: E402
from django.urls import get_resolver, set_script_prefix  # noqa: E402

from notifications.routing import websocket_urlpatterns  # noqa: E402


class RequestThreads(ASGIHandler):
    """Django's ASGI handler for a site whose views and middleware are all sync: the whole
    request in one hop to one of `threads` reused threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        # Made on the first request, in the server's event loop.
        self._idle: asyncio.LifoQueue[ThreadPoolExecutor] | None = None
        super().__init__()
        # Made once: building the wrapper per request was a tenth of the process's CPU.
        self._get_response_in_thread = sync_to_async(self.get_response, thread_sensitive=True)
        self._serve_in_thread = sync_to_async(self._serve, thread_sensitive=True)
        self._close_in_thread = sync_to_async(HttpResponseBase.close, thread_sensitive=True)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await self._get_response_in_thread(request)  # type: ignore[no-any-return]

    def _serve(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """What Django's handle does around the chain, in the request's thread: the
        request_started signal, the request (or the error that stops it), the chain and view,
        and the close of a response whose body is already made (which sends request_finished
        and gives the connection back to the pool)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        assert response is not None
        if not response.streaming:
            response.close()
        return response

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ASGIHandler.handle with its sync parts in one hop (`_serve`). A client
        that leaves is not watched for: a sync view runs to its end whatever it does, and its
        answer then goes nowhere (uvicorn drops what is sent to a closed connection)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await self._serve_in_thread(scope, body_file)
            await self.send_response(response, send)
            if response.streaming:
                # Its body was read while sending; closing it ends the request.
                await self._close_in_thread(response)
        finally:
            body_file.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        if self._idle is None:
            self._idle = asyncio.LifoQueue()
            for n in range(self.threads):
                self._idle.put_nowait(ThreadPoolExecutor(1, thread_name_prefix=f"request-{n}"))
        idle = self._idle
        # LIFO: the thread that finished last, whose stack and connection are warm.
        executor = await idle.get()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # A view still running after its client left keeps the executor busy; the next
            # request given it waits behind it (one call at a time), which is still correct.
            idle.put_nowait(executor)


# Django imports the URLconf (and with it the admin and every view module) on a process's first
# request: do it now, while the process starts, not in some client's request.
get_resolver().url_patterns  # noqa: B018

# One thread per connection the pool can hand out (10 without a pool: each thread then keeps
# its own connection, CONN_MAX_AGE).
REQUEST_THREADS = settings.DATABASE_POOL_MAX_SIZE or 10

application = ProtocolTypeRouter({
    # The pages' few static files are served by the app itself: no separate file server.
    "http": ASGIStaticFilesHandler(RequestThreads(REQUEST_THREADS)),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

# Everything loaded so far (Django, the apps, the URLconf, the routing) lives as long as the
# process: out of the collector's sight, a full collection no longer walks it. Under 20 clients
# a full collection of the web process took 80-1,970 ms (wall, on the loaded machine: every
# request of the process waits), with this 4-136 ms (docs/web.md).
gc.collect()
gc.freeze()
