"""Real-time live rooms over server-sent events.

Every viewer holds one ``GET /api/v1/live-rooms/{id}/events`` stream. A change (pin, start,
end) is published once per room after its transaction commits:

- with Redis configured, to the channel ``juxing:live:{room_id}``; every API process listens
  (one pattern subscription per process) and hands the message to its own viewers, so any
  number of ``juxing serve`` processes fan out the same events;
- without Redis (the embedded single process), straight to the local viewers.

A per-room ticker in each process sends viewer counts and stock left every few seconds while it
has viewers (one database query per room per tick, not per viewer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder

log = logging.getLogger("juxing.content.live")

CHANNEL_PREFIX = "juxing:live:"
VIEWERS_KEY = "juxing:live-viewers:"
KEEPALIVE_S = 15.0
TICK_S = 2.0
QUEUE_MAX = 256

StockProbe = Callable[[int], dict[str, Any] | None]


def encode(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One server-sent event, ready to write."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(jsonable_encoder(data), ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


class LiveHub:
    """Fans live-room events out to the viewers connected to this process."""

    def __init__(self, redis_url: str | None, stock_probe: StockProbe | None = None) -> None:
        self.redis_url = redis_url
        self.stock_probe = stock_probe
        self._rooms: dict[int, set[asyncio.Queue[bytes | None]]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tickers: dict[int, asyncio.Task[None]] = {}
        self._last_tick: dict[int, bytes] = {}
        self._sync_redis: redis.Redis | None = (
            redis.Redis.from_url(redis_url, socket_timeout=5) if redis_url else None
        )
        self._aredis: aioredis.Redis | None = None
        self._listening = asyncio.Event() if redis_url else None

    # -- viewers ---------------------------------------------------------------------

    async def subscribe(self, room_id: int) -> asyncio.Queue[bytes | None]:
        """Register a viewer; returns the queue its stream reads."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self._rooms[room_id].add(queue)
        if self.redis_url:
            await self._ensure_listener()
            assert self._aredis is not None
            await self._aredis.incr(VIEWERS_KEY + str(room_id))
        if room_id not in self._tickers:
            self._tickers[room_id] = asyncio.create_task(self._tick(room_id))
        return queue

    async def unsubscribe(self, room_id: int, queue: asyncio.Queue[bytes | None]) -> None:
        viewers = self._rooms.get(room_id)
        if viewers is not None:
            viewers.discard(queue)
            if not viewers:
                self._rooms.pop(room_id, None)
                ticker = self._tickers.pop(room_id, None)
                if ticker is not None:
                    ticker.cancel()
        if self._aredis is not None:
            with contextlib.suppress(redis.RedisError):
                await self._aredis.decr(VIEWERS_KEY + str(room_id))

    def local_viewers(self, room_id: int) -> int:
        return len(self._rooms.get(room_id, ()))

    async def viewers(self, room_id: int) -> int:
        """Viewers of the room across every process (this process alone without Redis)."""
        if self._aredis is not None:
            value = await self._aredis.get(VIEWERS_KEY + str(room_id))
            return max(0, int(value or 0))
        return self.local_viewers(room_id)

    # -- publishing ------------------------------------------------------------------

    def publish(self, room_id: int, event: str, data: dict[str, Any], event_id: int | None) -> None:
        """Send an event to every viewer of the room (call after the change committed).

        Safe to call from any thread (endpoints run in a thread pool)."""
        payload = encode(event, data, event_id)
        if self._sync_redis is not None:
            self._sync_redis.publish(CHANNEL_PREFIX + str(room_id), payload)
            return
        self._deliver_threadsafe(room_id, payload)

    def _deliver_threadsafe(self, room_id: int, payload: bytes) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody has connected to this process yet
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(room_id, payload)
        else:
            loop.call_soon_threadsafe(self._deliver, room_id, payload)

    def _deliver(self, room_id: int, payload: bytes | None) -> None:
        for queue in list(self._rooms.get(room_id, ())):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                # A viewer too slow to read 256 events is dropped; its client reconnects.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            assert self.redis_url is not None and self._listening is not None
            self._aredis = aioredis.Redis.from_url(self.redis_url)
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen())
        assert self._listening is not None
        await self._listening.wait()

    async def _listen(self) -> None:
        assert self._aredis is not None and self._listening is not None
        pubsub = self._aredis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(CHANNEL_PREFIX + "*")
        self._listening.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel = message["channel"].decode()
                with contextlib.suppress(ValueError):
                    self._deliver(int(channel.removeprefix(CHANNEL_PREFIX)), message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # -- periodic viewer count and stock ---------------------------------------------

    async def _tick(self, room_id: int) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                data: dict[str, Any] = {"room_id": room_id, "viewers": await self.viewers(room_id)}
                if self.stock_probe is not None:
                    stock = await asyncio.to_thread(self.stock_probe, room_id)
                    if stock is not None:
                        data.update(stock)
                payload = encode("tick", data)
                if self._last_tick.get(room_id) != payload:
                    self._last_tick[room_id] = payload
                    self._deliver(room_id, payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live room %s tick failed", room_id)

    async def close(self) -> None:
        for ticker in self._tickers.values():
            ticker.cancel()
        if self._listener is not None:
            self._listener.cancel()
        if self._aredis is not None:
            await self._aredis.aclose()
        if self._sync_redis is not None:
            self._sync_redis.close()


async def stream(
    hub: LiveHub, room_id: int, queue: asyncio.Queue[bytes | None], first: bytes
) -> AsyncIterator[bytes]:
    """A viewer's event stream: the snapshot, then every event, with keep-alives."""
    try:
        yield first
        while True:
            try:
                payload = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if payload is None:
                break
            yield payload
    finally:
        await hub.unsubscribe(room_id, queue)


def get_hub(app: FastAPI, stock_probe: StockProbe | None = None) -> LiveHub:
    """The app's hub, created on first use."""
    hub: LiveHub | None = getattr(app.state, "content_live_hub", None)
    if hub is None:
        hub = LiveHub(app.state.settings.redis_url, stock_probe)
        app.state.content_live_hub = hub
    return hub
