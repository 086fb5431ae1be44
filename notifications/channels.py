"""The one module that talks to the channel layer."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.serializers import MsgPackSerializer

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    """One user's Channels group. Built from the user's id, so two users can never share
    one (the original derived it from the email and let `a+b@x` and `a-b@x` collide)."""
    return f"notifications.user.{int(user_id)}"


# Sends in flight at once on a layer that is not channels-redis's (the tests' in-memory one).
CONCURRENT_SENDS = 50
# Users whose messages are sent in one Redis script (and whose groups are looked at in one).
PIPELINE = 1000
# The longest a task waits for its sends: the layer's own socket timeout is shorter; this only
# keeps a task from hanging on a loop that died.
SEND_TIMEOUT_SECONDS = 60.0

Message = tuple[str, dict[str, Any]]

# What channels-redis 4.3's group_send does, for many groups in one script (one round trip
# for a whole batch's frames, where group_send took two to four per group): for each group
# (KEYS), drop the memberships past the group expiry and read its channels; for each channel
# key among them (one per web process), drop the messages past their expiry, and unless the
# key is at capacity add the group's message, addressed to the group's channels of that key
# (`__asgi_channel__`, as _map_channel_keys_to_connection writes it). The message is
# serialized in Python, with an empty `__asgi_channel__` list last and the list's one-byte
# header cut off (ARGV[6 + i]); the script appends the list as msgpack. The channel keys are
# not in KEYS: one Redis, not a cluster (ring_size 1, like the rest of this module).
# ARGV: the oldest group join still valid, the time (the score), the oldest message still
# valid, the channel expiry, the capacity, the key prefix, then one message per group.
_SEND_LUA = """
local function packed_str(s)
    local n = #s
    if n < 32 then return string.char(0xa0 + n) .. s end
    if n < 256 then return string.char(0xd9, n) .. s end
    if n < 65536 then return string.char(0xda, math.floor(n / 256), n % 256) .. s end
    return string.char(0xdb, math.floor(n / 16777216), math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256) .. s
end
local function array_header(n)
    if n < 16 then return string.char(0x90 + n) end
    if n < 65536 then return string.char(0xdc, math.floor(n / 256), n % 256) end
    return string.char(0xdd, math.floor(n / 16777216), math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
end
local now, expiry, capacity, prefix = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local cleaned = {}
local sent, refused = 0, 0
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    local names = redis.call('ZRANGE', KEYS[i], 0, -1)
    local by_key, keys = {}, {}
    for _, name in ipairs(names) do
        local bang = string.find(name, '!', 1, true)
        local key = prefix .. (bang and string.sub(name, 1, bang) or name)
        if by_key[key] == nil then
            by_key[key] = {}
            keys[#keys + 1] = key
        end
        local mine = by_key[key]
        mine[#mine + 1] = packed_str(name)
    end
    for _, key in ipairs(keys) do
        if not cleaned[key] then
            redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[3])
            cleaned[key] = true
        end
        if redis.call('ZCARD', key) < capacity then
            local mine = by_key[key]
            redis.call('ZADD', key, now, ARGV[6 + i] .. array_header(#mine) .. table.concat(mine))
            redis.call('EXPIRE', key, expiry)
            sent = sent + 1
        else
            refused = refused + 1
        end
    end
end
return {sent, refused}
"""

# How many channels each group has (after dropping the memberships past the group expiry).
# ARGV[1]: the oldest join time still valid.
_COUNT_LUA = """
local out = {}
for i=1,#KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    out[i] = redis.call('ZCARD', KEYS[i])
end
return out
"""

_EMPTY_LIST = b"\x90"


def _scripted(layer: Any) -> bool:
    """Whether _SEND_LUA can stand in for this layer's group_send: channels-redis on one
    Redis, its msgpack serializer with a random prefix and without encryption, one capacity
    for every channel."""
    serializer = getattr(layer, "_serializer", None)
    return (isinstance(layer, RedisChannelLayer) and layer.ring_size == 1 and not layer.channel_capacity
            and isinstance(serializer, MsgPackSerializer) and serializer.crypter is None
            and serializer.random_prefix_length > 0)


def _head(layer: RedisChannelLayer, message: dict[str, Any]) -> bytes:
    """A group's message as channels-redis serializes it, short of its channel names: the
    random prefix that keeps equal messages apart in a sorted set, then the msgpack map with
    `__asgi_channel__` last, its list's header cut off for _SEND_LUA to write."""
    assert "__asgi_channel__" not in message
    body = layer.serialize({**message, "__asgi_channel__": []})
    assert body.endswith(_EMPTY_LIST)
    return body[:-1]


async def _scripted_group_send(layer: RedisChannelLayer, messages: list[Message]) -> int:
    """Every message to its group, PIPELINE groups per round trip (_SEND_LUA). Relies on
    channels-redis 4.3's key layout and serialization, pinned in requirements.txt and held
    to by tests/integration/test_websocket.py and test_broadcast.py (the real consumers
    read what this writes). Returns the messages refused at capacity."""
    connection = layer.connection(0)
    refused = 0
    for start in range(0, len(messages), PIPELINE):
        chunk = messages[start:start + PIPELINE]
        now = time.time()
        _, over = await connection.eval(
            _SEND_LUA, len(chunk), *(layer._group_key(group) for group, _ in chunk),
            int(now) - layer.group_expiry, now, int(now) - int(layer.expiry), int(layer.expiry), layer.capacity,
            layer.prefix, *(_head(layer, message) for _, message in chunk))
        refused += int(over)
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
    if _scripted(layer):
        refused = await _scripted_group_send(layer, messages)
        if refused:
            # What channels-redis's group_send logs too: a web process is not reading its key.
            log.warning("%d of %d messages refused: a channel key was at its capacity (%d)",
                        refused, len(messages), layer.capacity)
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
    process's sending loop, in one Redis script (channels-redis) or CONCURRENT_SENDS at a time."""
    batch = [(user_group(user_id), message) for user_id, message in messages]
    if batch:
        asyncio.run_coroutine_threadsafe(_send_all(batch), _sending_loop()).result(SEND_TIMEOUT_SECONDS)
    return len(batch)


# Messages a web process takes off its channel key per round trip.
RECEIVE_BATCH = 100

# What channels-redis's receive does before and after its blocking pop, for many messages at
# once: put back what a cancelled receive left in the backup key (KEYS[2]), then move up to
# ARGV[1] messages from the channel key (KEYS[1]) to the backup and return them, oldest first,
# with their scores.
_TAKE_LUA = """
local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = #backed_up, 1, -2 do
    redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
end
redis.call('DEL', KEYS[2])
local taken = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
for i = 1, #taken, 2 do
    redis.call('ZADD', KEYS[2], taken[i + 1], taken[i])
end
return taken
"""


class ChannelLayer(RedisChannelLayer):  # type: ignore[misc]
    """channels-redis's layer (settings.CHANNEL_LAYERS), with a web process taking the
    messages waiting on its channel key up to RECEIVE_BATCH per round trip. channels-redis
    takes one message per receive, in four round trips one after the other (put back the
    backup, the blocking pop, the backup of what it popped, then the backup's clean-up, which
    the next receive waits for): a bare receiver managed 570-640 messages/s on this machine,
    and a loaded web process fell seconds behind 200 frames/s (docs/latency.md). Here a
    receive that finds messages waiting takes them all in one script and clears their backup
    in a second round trip; only an idle channel waits in channels-redis's blocking pop. The
    backup works as before: messages taken are in it until they are in this process's
    buffers, and a receive cancelled meanwhile leaves them for the next one to put back."""

    async def receive_single(self, channel: str) -> tuple[Any, dict[str, Any]]:
        if "!" not in channel:
            return await super().receive_single(channel)  # type: ignore[no-any-return]
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        index = self.consistent_hash(channel)
        channel_key = self.prefix + channel
        backup = self._backup_channel_name(channel_key)
        connection = self.connection(index)
        await self.receive_clean_locks.acquire(channel_key)
        try:
            taken = await connection.eval(_TAKE_LUA, 2, channel_key, backup, RECEIVE_BATCH)
            contents = taken[0::2]
            while not contents:
                content = await self._brpop_with_clean(index, channel_key, timeout=self.brpop_timeout)
                contents = [content] if content is not None else []
            cleaner = asyncio.ensure_future(connection.delete(backup))
            self.receive_cleaners.append(cleaner)

            def cleaned(done: asyncio.Future[Any]) -> None:
                self.receive_cleaners.remove(done)
                self.receive_clean_locks.release(channel_key)

            cleaner.add_done_callback(cleaned)
        except BaseException:
            self.receive_clean_locks.release(channel_key)
            raise
        received = [self._addressed(channel, self.deserialize(content)) for content in contents]
        # All but the last go to their channels' buffers here, as receive() does with the
        # last one, with no await in between.
        for to, message in received[:-1]:
            for name in to if isinstance(to, list) else [to]:
                self.receive_buffer[name].put_nowait(message)
        return received[-1]

    @staticmethod
    def _addressed(channel: str, message: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(the channel or channels the message is for, the message), as receive_single says."""
        to = message.pop("__asgi_channel__", channel)
        return to, message
