"""The buy endpoint's fast path (``POST /api/v1/orders``, kit/fastroute.py): group commit.

A flash sale is thousands of identical small buys of one hot deal item. The fast path takes
the plain ones (a bearer token, ``deal_item_id`` and ``quantity``, with or without an
``Idempotency-Key``; no coupon, group or live room) on the event loop, without FastAPI's
per-request dependency and validation machinery, and hands them to this process's one buy
writer: while it writes a group in one transaction (``deals.flash.place_buys``), the buys
arriving meanwhile queue up and form the next group. A buy is answered only after its
group's COMMIT, so a 201 means the order is durable; each answer is what the regular route
would have given.

Everything else (cookie sessions, coupons, group deals, live rooms, an empty or overlong
Idempotency-Key, any body the fast path does not recognise) goes to the regular route,
which also answers the invalid bodies with its validation errors. ``JUXING_FAST_PATHS=false``
turns it off.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeGuard

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from juxing.deals import flash
from juxing.deals.endpoints import VISITOR_COOKIE, buying
from juxing.kit.errors import JuxingError, ServiceUnavailable, error_response
from juxing.kit.fastroute import add_fast_path
from juxing.kit.idempotency import REPLAY_HEADER
from juxing.kit.ratelimit import LimitRule, RateLimiter, check_ip, limiter_for
from juxing.kit.security import hash_token

log = logging.getLogger("juxing.deals.fastbuy")

PATH = "/api/v1/orders"
# The most buys written in one transaction, and waiting for the writer (then 503).
MAX_GROUP = 128
MAX_QUEUED = 10_000
_PLAIN_KEYS = frozenset({"deal_item_id", "quantity"})
# Keys of ReserveIn the fast path accepts only at their "not used" value.
_UNUSED = {"coupon_claim_id": None, "start_group": False, "group_code": None, "live_room_id": None}
_MAX_ID = 2**63 - 1
_READ = frozenset({b"authorization", b"idempotency-key", b"content-type", b"cookie"})
_Queued = tuple[flash.Buy, "asyncio.Future[bytes]"]


def install(app: FastAPI) -> None:
    # Queued buys hold no worker thread or connection: not counted by the in-flight cap.
    add_fast_path(app, method="POST", path=PATH, handler=buy_fast, bounded=False)


def _is_int(value: Any) -> TypeGuard[int]:
    """An int that JSON gave as a number (not a bool)."""
    return type(value) is int


def parse(request: Request, body: bytes) -> flash.Buy | None:
    """The buy, when the request is a plain one the fast path answers; else None."""
    # The headers the fast path reads, in one pass (names are lower case; the first wins).
    found: dict[bytes, bytes] = {}
    for name, value in request.scope["headers"]:
        if name in _READ and name not in found:
            found[name] = value
    auth = found.get(b"authorization", b"").decode("latin-1")
    if not auth:
        return None
    idem_key = None
    if b"idempotency-key" in found:
        idem_key = found[b"idempotency-key"].decode("latin-1").strip()
        if not 1 <= len(idem_key) <= 255:  # the regular route answers 400
            return None
    scheme, _, raw = auth.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        return None
    ctype = found.get(b"content-type", b"").decode("latin-1")
    if ctype.split(";")[0].strip().lower() != "application/json":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key, value in data.items():
        if key not in _PLAIN_KEYS and (key not in _UNUSED or _UNUSED[key] != value):
            return None
        if key == "start_group" and value is not False:
            return None
    item_id, quantity = data.get("deal_item_id"), data.get("quantity", 1)
    if not (_is_int(item_id) and 0 < item_id <= _MAX_ID):
        return None
    if not (_is_int(quantity) and 1 <= quantity <= 1000):
        return None
    visitor = request.cookies.get(VISITOR_COOKIE) if b"cookie" in found else None
    return flash.Buy(
        token_hash=hash_token(raw),
        deal_item_id=item_id,
        quantity=quantity,
        visitor_id=visitor[:64] if visitor else None,
        idempotency_key=idem_key,
        request_hash=hashlib.sha256(body).hexdigest() if idem_key is not None else "",
    )


async def buy_fast(request: Request) -> Response | None:
    buy = parse(request, await request.body())
    if buy is None:
        return None
    app = request.app
    writer: BuyWriter | None = getattr(app.state, "buy_writer", None)
    if writer is None or writer.stopped:  # (a stopped one: the app is served again)
        writer = app.state.buy_writer = BuyWriter(app, request)
    if app.state.settings.rate_limits_enabled:
        # the per-IP limit here; the per-user one by the writer, once the token is resolved
        await run_in_threadpool(check_ip, request, "buy")
    body = await writer.place(buy)
    if isinstance(buy.outcome, JuxingError):  # (returned: raising it costs more)
        return error_response(buy.outcome)
    if isinstance(buy.outcome, flash.Replayed):
        return Response(
            buy.outcome.body,
            status_code=buy.outcome.status,
            media_type="application/json",
            headers={REPLAY_HEADER: "true"},
        )
    return Response(body, status_code=201, media_type="application/json")


class BuyWriter:
    """The process's buy writer: places the queued buys a group at a time, each group in
    one transaction in its worker thread, and hands each buyer its answer once the group
    committed.

    One writer per process: the buys that queue while it writes form the next group, so
    groups grow with the load. (Measured: a second writer on PostgreSQL or Redis halves the
    groups and costs more CPU per buy than it saves in waiting; SQLite allows one writer.)
    The next group is formed when the event loop takes the previous one's answers (not by
    the thread the moment it is done): with the benchmark's 64 clients that gives groups of
    about 32 while the loop answers and reads the other 32 (a thread taking whatever had
    arrived the moment it was done alternated groups of 63 and 1, for no more buys per
    second)."""

    def __init__(self, app: FastAPI, request: Request) -> None:
        self.db = app.state.db
        self.sessions, self._close = self.db.dedicated_sessions()
        self.ctx = buying(request)
        self.idempotency_ttl_s: int = app.state.settings.idempotency_ttl_s
        self.limiter: tuple[RateLimiter, LimitRule] | None = None
        if app.state.settings.rate_limits_enabled:
            limiter = limiter_for(request)
            self.limiter = (limiter, app.state.rate_limit_rules["buy"])
        self.queue: list[_Queued] = []
        self.busy = False
        self.stopped = False
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="juxing-buy")

    async def place(self, buy: flash.Buy) -> bytes:
        """Queue ``buy``; return the 201 body once its order has committed (or b"" with
        ``buy.outcome`` set to the answer)."""
        if len(self.queue) >= MAX_QUEUED:
            raise ServiceUnavailable(
                "Too many buys are waiting; try again.",
                code="buy_queue_full",
                headers={"Retry-After": "1"},
            )
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.queue.append((buy, future))
        self._pump()
        return await future

    def stop(self) -> None:
        """The app stops: the buys still queued are answered 503 (nothing was written for
        them), the group in hand is finished, and the writer's connection closed."""
        self.stopped = True
        queued, self.queue = self.queue, []
        for _buy, future in queued:
            if not future.done():
                future.set_exception(_unavailable())
        self.thread.shutdown(wait=True)
        self._close()

    def _pump(self) -> None:
        """Hand the queued buys (up to MAX_GROUP) to the writer thread, unless it is busy."""
        if self.queue and not self.busy and not self.stopped:
            group, self.queue = self.queue[:MAX_GROUP], self.queue[MAX_GROUP:]
            self.busy = True
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(self.thread, self.write, [buy for buy, _f in group])
            done.add_done_callback(functools.partial(self._answer, group))

    def _answer(self, group: list[_Queued], done: asyncio.Future[list[bytes]]) -> None:
        """A group is written: the next one goes to the writer thread first, then this one's
        buyers are answered (the loop sends their responses while the thread writes)."""
        self.busy = False
        self._pump()
        if done.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = done.exception()
        if exc is not None:  # every buyer must be answered
            for _buy, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_buy, future), body in zip(group, done.result(), strict=True):
            if not future.done():
                future.set_result(body)

    def write(self, buys: list[flash.Buy]) -> list[bytes]:
        """Place a group in one unit of work (in a writer thread). When the group fails
        before its COMMIT was sent (an unexpected database error, Redis reset), each buy
        is placed again on its own, so one buy's trouble is not the group's; when the
        COMMIT itself fails, nobody can know whether it happened, and every buy of the
        group is answered 503 (a retry with the same Idempotency-Key is safe: its claim
        committed with its order, or neither did)."""
        if not self._attempt(buys) and len(buys) > 1:
            for buy in buys:
                self._attempt([buy])
        placed = [b.outcome for b in buys if isinstance(b.outcome, flash.Placed)]
        bodies = iter(flash.order_bodies(placed))
        return [next(bodies) if isinstance(b.outcome, flash.Placed) else b"" for b in buys]

    def _attempt(self, buys: list[flash.Buy], *, optimistic: bool = True) -> bool:
        """Place ``buys`` in one unit of work; False if it rolled back before COMMIT."""
        for buy in buys:
            buy.outcome, buy.shopper_id, buy.token = None, 0, ""
        session = self.sessions()
        try:
            flash.place_buys(
                session=session,
                ctx=self.ctx,
                buys=buys,
                limiter=self.limiter,
                optimistic=optimistic,
                idempotency_ttl_s=self.idempotency_ttl_s,
                request=("POST", PATH),
            )
        except flash.StockMoved:
            self.db.end(session, commit=False)
            return self._attempt(buys, optimistic=False)
        except Exception as exc:
            self.db.end(session, commit=False)
            if len(buys) > 1:
                log.warning(
                    "a group of %s buys failed (%r); placing them one by one", len(buys), exc
                )
                return False
            if not isinstance(exc, JuxingError):
                log.exception("a buy failed")
            buys[0].outcome = exc if isinstance(exc, JuxingError) else _unavailable()
            return True
        try:
            self.db.end(session, commit=True)
        except JuxingError as exc:  # a before-commit check refused: nothing was committed
            if len(buys) > 1:
                log.warning("a group of %s buys was refused at commit (%s)", len(buys), exc.code)
                return False
            buys[0].outcome = exc
        except Exception:
            log.exception("the COMMIT of %s buys failed; answering 503", len(buys))
            for buy in buys:
                buy.outcome = _unavailable()
        return True


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("Buying is unavailable right now; try again.")
