"""Real-time live rooms over server-sent events.

Every viewer holds one ``GET /api/v1/live-rooms/{id}/events`` stream. A change (pin, start,
end) is published once per room after its transaction commits:

- with Redis configured, to the channel ``juxing:live:{room_id}``; every API process listens
  (one pattern subscription per process, read by a daemon thread) and hands the message to
  its own viewers, so any number of ``juxing serve`` processes fan out the same events;
- without Redis (the embedded single process), straight to the local viewers.

A per-room ticker in each process sends viewer counts and stock left every few seconds while it
has viewers (one database query per room per tick, not per viewer). With Redis, each process
reports its viewer count in a hash so the count covers every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder

log = logging.getLogger("juxing.content.live")

CHANNEL_PREFIX = "juxing:live:"
VIEWERS_KEY = "juxing:live-viewers:"
KEEPALIVE_S = 15.0
TICK_S = 2.0
VIEWERS_FRESH_S = 10.0
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
        self._tickers: dict[int, asyncio.Task[None]] = {}
        self._last_tick: dict[int, bytes] = {}
        self._viewer_cache: dict[int, int] = {}
        self._redis: redis.Redis | None = (
            redis.Redis.from_url(redis_url, socket_timeout=5) if redis_url else None
        )
        self._pubsub: Any = None
        self._listener: Any = None  # redis PubSubWorkerThread
        self._listener_lock = threading.Lock()
        self._process_key = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    # -- viewers ---------------------------------------------------------------------

    async def subscribe(self, room_id: int) -> asyncio.Queue[bytes | None]:
        """Register a viewer; returns the queue its stream reads."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self._rooms[room_id].add(queue)
        if self._redis is not None and self._listener is None:
            await asyncio.to_thread(self._start_listener)
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
        if not self._rooms and self._listener is not None:
            # Nobody watches anything here: let go of the subscription (it comes back with
            # the next viewer).
            await asyncio.to_thread(self._stop_listener)

    def local_viewers(self, room_id: int) -> int:
        return len(self._rooms.get(room_id, ()))

    def cached_viewers(self, room_id: int) -> int:
        """The last count the ticker saw (no I/O), or this process's own viewers."""
        return self._viewer_cache.get(room_id, self.local_viewers(room_id))

    def count_viewers(self, room_id: int) -> int:
        """Viewers of the room across every process (this process alone without Redis).

        With Redis, each process reports its own count in a hash every tick; counts older
        than ``VIEWERS_FRESH_S`` (a process that died) are ignored. Blocking: call in a thread.
        """
        local = self.local_viewers(room_id)
        if self._redis is None:
            return local
        key = VIEWERS_KEY + str(room_id)
        now = time.time()
        try:
            pipe = self._redis.pipeline()
            pipe.hset(key, self._process_key, f"{local}:{now:.0f}")
            pipe.expire(key, int(VIEWERS_FRESH_S * 3))
            pipe.hvals(key)
            entries = pipe.execute()[-1]
        except redis.RedisError:
            return local
        total = 0
        for entry in entries:
            count, _, seen = entry.decode().partition(":")
            if now - float(seen or 0) <= VIEWERS_FRESH_S:
                total += int(count)
        return total

    # -- publishing ------------------------------------------------------------------

    def publish(self, room_id: int, event: str, data: dict[str, Any], event_id: int | None) -> None:
        """Send an event to every viewer of the room (call after the change committed).

        Safe to call from any thread (endpoints run in a thread pool)."""
        payload = encode(event, data, event_id)
        if self._redis is not None:
            self._redis.publish(CHANNEL_PREFIX + str(room_id), payload)
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
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
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

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        try:
            room_id = int(channel.removeprefix(CHANNEL_PREFIX))
        except ValueError:
            return
        self._deliver_threadsafe(room_id, message["data"])

    def _start_listener(self) -> None:
        with self._listener_lock:
            if self._listener is not None or self._redis is None:
                return
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            pubsub.psubscribe(**{CHANNEL_PREFIX + "*": self._on_message})
            # Wait for the subscription to be confirmed, so no event published after the
            # first viewer's snapshot is missed.
            deadline = time.monotonic() + 5
            while not pubsub.subscribed and time.monotonic() < deadline:
                pubsub.get_message(timeout=0.05)
            self._pubsub = pubsub
            self._listener = pubsub.run_in_thread(
                sleep_time=1.0, daemon=True, exception_handler=self._listener_failed
            )

    def _listener_failed(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        """The subscription broke (Redis restarted, or we are closing): stop this thread;
        the next viewer starts a new one."""
        log.warning("live-room subscription stopped: %s", exc)
        thread.stop()
        with self._listener_lock:
            if self._listener is thread:
                self._listener, self._pubsub = None, None
        with contextlib.suppress(Exception):
            pubsub.close()

    def _stop_listener(self) -> None:
        with self._listener_lock:
            listener, pubsub = self._listener, self._pubsub
            self._listener, self._pubsub = None, None
        if listener is not None:
            listener.stop()
            listener.join(timeout=5)
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                pubsub.close()

    # -- periodic viewer count and stock ---------------------------------------------

    async def _tick(self, room_id: int) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                viewers = await asyncio.to_thread(self.count_viewers, room_id)
                self._viewer_cache[room_id] = viewers
                data: dict[str, Any] = {"room_id": room_id, "viewers": viewers}
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
        await asyncio.to_thread(self._stop_listener)
        if self._redis is not None:
            self._redis.close()
            self._redis.connection_pool.disconnect()


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
