"""The one module that talks to the channel layer."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer


def user_group(user_id: int) -> str:
    """One user's Channels group. Built from the user's id, so two users can never share
    one (the original derived it from the email and let `a+b@x` and `a-b@x` collide)."""
    return f"notifications.user.{int(user_id)}"


# Sends in flight at once on a layer that is not channels-redis's (the tests' in-memory one).
CONCURRENT_SENDS = 50
# Users whose groups are read, and whose messages are written, in one Redis command each.
PIPELINE = 1000
# The longest a task waits for its sends: the layer's own socket timeout is shorter; this only
# keeps a task from hanging on a loop that died.
SEND_TIMEOUT_SECONDS = 60.0

Message = tuple[str, dict[str, Any]]

# channels-redis 4.3's group_send script, for many channels of many groups in one call: each
# key gets its message unless it is at capacity. ARGV: the messages, the capacities, the time,
# the expiry.
_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


# Each group's channels, after dropping those past the group expiry (what group_send reads
# first, for many groups in one call). ARGV[1]: the oldest join time still valid.
_MEMBERS_LUA = """
local out = {}
for i=1,#KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    out[i] = redis.call('ZRANGE', KEYS[i], 0, -1)
end
return out
"""

# How many channels each group has (the same expiry first).
_COUNT_LUA = """
local out = {}
for i=1,#KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    out[i] = redis.call('ZCARD', KEYS[i])
end
return out
"""


async def _pipelined_group_send(layer: RedisChannelLayer, messages: list[Message]) -> int:
    """What `group_send` does for each message, for PIPELINE groups at a time in three round
    trips (read the groups' channels; drop expired messages; add the new ones) instead of
    two to four round trips per group, and with one command per step (a pipeline of 10,000
    commands cost more in redis-py than the round trips it saved). Relies on channels-redis
    4.3's key layout and helpers (`_group_key`, `_map_channel_keys_to_connection`), pinned in
    requirements.txt and held to by tests/integration/test_websocket.py. Returns the messages
    refused at capacity."""
    connection = layer.connection(0)
    refused = 0
    for start in range(0, len(messages), PIPELINE):
        chunk = messages[start:start + PIPELINE]
        found = await connection.eval(_MEMBERS_LUA, len(chunk), *(layer._group_key(g) for g, _ in chunk),
                                      int(time.time()) - layer.group_expiry)
        keys: list[str] = []
        payloads: list[bytes] = []
        capacities: list[int] = []
        for (_, message), names in zip(chunk, found, strict=True):
            if not names:
                continue
            by_connection, payload, capacity = layer._map_channel_keys_to_connection(
                [name.decode("utf8") for name in names], message)
            for channel_keys in by_connection.values():
                for channel_key in channel_keys:
                    keys.append(channel_key)
                    payloads.append(payload[channel_key])
                    capacities.append(capacity[channel_key])
        if not keys:
            continue
        # Messages past their expiry go first, as group_send does (a few keys: one per
        # daphne process).
        expire = connection.pipeline(transaction=False)
        for channel_key in set(keys):
            expire.zremrangebyscore(channel_key, min=0, max=int(time.time()) - int(layer.expiry))
        await expire.execute()
        refused += int(await connection.eval(_SEND_LUA, len(keys), *keys, *payloads, *capacities,
                                             time.time(), layer.expiry))
    return refused


async def _listening(layer: Any, user_ids: list[int]) -> set[int]:
    """The users whose group has a channel now (an open socket), PIPELINE groups per round
    trip. A layer that is not channels-redis's cannot say: every user counts."""
    if not (isinstance(layer, RedisChannelLayer) and layer.ring_size == 1):
        return set(user_ids)
    connection = layer.connection(0)
    found: set[int] = set()
    for start in range(0, len(user_ids), PIPELINE):
        chunk = user_ids[start:start + PIPELINE]
        counts = await connection.eval(_COUNT_LUA, len(chunk), *(layer._group_key(user_group(u)) for u in chunk),
                                       int(time.time()) - layer.group_expiry)
        found.update(user_id for user_id, count in zip(chunk, counts, strict=True) if count)
    return found


def listening(user_ids: Iterable[int]) -> set[int]:
    """Which of these users have a page open (a socket in their group) right now. A page
    opened just after this look loads its notifications itself, so it misses nothing."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return set()
    return asyncio.run_coroutine_threadsafe(_listening(get_channel_layer(), ids), _sending_loop()).result(
        SEND_TIMEOUT_SECONDS)


async def _send_all(messages: list[Message]) -> None:
    layer = get_channel_layer()
    if isinstance(layer, RedisChannelLayer) and layer.ring_size == 1:
        await _pipelined_group_send(layer, messages)
        return
    for start in range(0, len(messages), CONCURRENT_SENDS):
        await asyncio.gather(*(layer.group_send(group, message)
                               for group, message in messages[start:start + CONCURRENT_SENDS]))


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _sending_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, in a thread of its own, for every send of that process.
    asgiref's async_to_sync made a fresh loop for each call, and channels-redis keeps its
    connections per loop, so every persist task opened new Redis connections: 20 ms for a
    batch of 3 messages, the largest fixed cost of a small task. A Celery pool process is
    forked: it makes its own loop (the parent's thread did not come along)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer-sends", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def send_to_users(messages: Iterable[tuple[int, dict[str, Any]]]) -> int:
    """Send each (user id, message) to that user's group, all from one coroutine on the
    process's sending loop, pipelined (channels-redis) or CONCURRENT_SENDS at a time."""
    batch = [(user_group(user_id), message) for user_id, message in messages]
    if batch:
        asyncio.run_coroutine_threadsafe(_send_all(batch), _sending_loop()).result(SEND_TIMEOUT_SECONDS)
    return len(batch)
