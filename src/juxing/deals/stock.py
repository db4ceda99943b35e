"""Deal stock backends behind one interface (``StockBackend``).

- ``SqlStock``: a guarded conditional ``UPDATE ... WHERE available >= :n`` (row count
  checked) and a guarded upsert of the shopper's holding (``WHERE quantity + :n <= limit``);
  works on SQLite and PostgreSQL and needs nothing else (the embedded default).
- ``RedisStock``: one Lua script checks and takes the deal stock and the shopper's counter
  atomically; the order itself is written durably to SQL. A reservation leaves a token in
  Redis (also stored on the order) so that ``rebuild`` can reconstruct exact counters from
  SQL after a crash or restart; later transitions (pay, cancel, refund) are applied to Redis
  after the SQL commit, at most once per operation id.

Per deal item, at all times: available + reserved + sold == deal_stock, none negative, and
no shopper holds more than the per-user limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis
from sqlalchemy import Engine, Table, bindparam, event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from juxing.kit.db import ASYNC_COMMIT
from juxing.kit.errors import Conflict, ServiceUnavailable, Unprocessable
from juxing.models.deals import DealHolding, DealItem
from juxing.models.orders import Order, OrderLine, OrderStatus, RefundLine

log = logging.getLogger("juxing.deals.stock")

# A Redis reservation whose order never reached SQL is dropped after this long.
STALE_RESERVATION_MS = 5 * 60 * 1000
HELD_STATUSES = (
    OrderStatus.PAID.value,
    OrderStatus.SHIPPED.value,
    OrderStatus.RECEIVED.value,
    OrderStatus.REFUNDED.value,
)


def sold_out() -> Conflict:
    return Conflict("This deal is sold out.", code="sold_out")


def over_limit(limit: int) -> Unprocessable:
    return Unprocessable(
        f"You may hold at most {limit} of this deal.",
        code="per_user_limit",
        details={"field": "body.quantity", "per_user_limit": limit},
    )


def rowcount(result: Any) -> int:
    """Rows an UPDATE changed (``Session.execute`` is typed as returning a plain Result)."""
    return int(result.rowcount)


@dataclass(frozen=True)
class ItemRef:
    """What a backend needs to know about a deal item."""

    id: int
    deal_stock: int
    per_user_limit: int


class StockBackend(Protocol):
    name: str

    def take(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        token: str,
        at_commit: bool = False,
    ) -> None:
        """Hold ``quantity`` units for the shopper (available -> reserved) or raise.

        ``at_commit``: a backend that locks a shared row may take the stock when the session
        commits (and raise from the commit), so the hot row is locked only for the commit."""

    def release(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, op_id: str
    ) -> None:
        """An unpaid order was cancelled: reserved -> available."""

    def sell(self, session: Session, *, item: ItemRef, quantity: int, op_id: str) -> None:
        """An order was paid: reserved -> sold."""

    def refund(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        restock: bool,
        op_id: str,
    ) -> None:
        """Units were refunded: the shopper's holding shrinks; sold -> available if restocked."""


# --- after-commit hooks -------------------------------------------------------------------
#
# A hook belongs to the transaction that was innermost when it was registered: a savepoint
# (``begin_nested``) that rolls back takes its hooks with it even when the outer transaction
# commits. Commit hooks of a rolled-back savepoint never run (its SQL change is gone), and
# its rollback hooks run when the outermost transaction ends (whether it commits or not).
# Releasing a savepoint is not a commit: SQLAlchemy fires before/after_commit for it too, and
# those are ignored. A COMMIT that fails after it was sent runs no rollback hook (its outcome
# is unknown).


@dataclass
class _Hooks:
    # (owning transaction or None for the outermost, fn)
    before: list[tuple[Any, Callable[[], None]]] = field(default_factory=list)
    commit: list[tuple[Any, Callable[[], None]]] = field(default_factory=list)
    rollback: list[tuple[Any, Callable[[], None]]] = field(default_factory=list)
    rolled_back: list[Any] = field(default_factory=list)  # savepoints that rolled back

    def clear(self) -> None:
        self.before, self.commit, self.rollback, self.rolled_back = [], [], [], []

    def undone(self, txn: Any) -> bool:
        """Whether ``txn`` or a savepoint around it rolled back."""
        while txn is not None and txn.nested:
            if any(txn is t for t in self.rolled_back):
                return True
            txn = txn.parent
        return False


def on_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the session's outermost transaction has committed (unless the
    savepoint it was registered in rolled back)."""
    _hooks(session).commit.append((session.get_nested_transaction(), fn))


def on_rollback(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` if the session's outermost transaction ends without committing, or if the
    savepoint it was registered in rolled back."""
    _hooks(session).rollback.append((session.get_nested_transaction(), fn))


def before_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` inside the session's next commit, just before COMMIT; if it raises, the
    commit fails and the transaction rolls back."""
    _hooks(session).before.append((session.get_nested_transaction(), fn))


def _hooks(session: Session) -> _Hooks:
    hooks = session.info.get("juxing_stock_hooks")
    if hooks is None:
        hooks = _Hooks()
        session.info["juxing_stock_hooks"] = hooks
        event.listen(session, "before_commit", _before_commit)
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_soft_rollback)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    return hooks


# Set once a unit of work with hooks has run its before-commit hooks and flushed: a failure
# after that may be of the COMMIT itself, whose outcome is then unknown.
_COMMIT_SENT = "juxing_stock_commit_sent"


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint being released (SQLAlchemy fires the event for it too)
    hooks: _Hooks | None = session.info.get("juxing_stock_hooks")
    if not hooks:
        return
    if hooks.before:
        before, hooks.before = hooks.before, []
        session.flush()  # everything else of the transaction first
        for txn, fn in before:
            if not hooks.undone(txn):
                fn()
    session.flush()
    session.info[_COMMIT_SENT] = True


def _run(fns: list[Callable[[], None]]) -> None:
    for fn in fns:
        try:
            fn()
        except Exception:  # Redis down: reconciliation repairs the counters
            log.exception("stock hook failed; reconciliation will repair the counters")


def _after_soft_rollback(session: Session, previous: Any) -> None:
    hooks: _Hooks | None = session.info.get("juxing_stock_hooks")
    if hooks is not None and previous.nested:
        hooks.rolled_back.append(previous)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its hooks wait for the outermost commit
    session.info.pop(_COMMIT_SENT, None)
    hooks: _Hooks | None = session.info.get("juxing_stock_hooks")
    if hooks:
        run = [fn for txn, fn in hooks.commit if not hooks.undone(txn)]
        run += [fn for txn, fn in hooks.rollback if hooks.undone(txn)]
        hooks.clear()
        _run(run)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    commit_sent = session.info.pop(_COMMIT_SENT, False)
    hooks: _Hooks | None = session.info.get("juxing_stock_hooks")
    if hooks:
        rollback = [fn for _txn, fn in hooks.rollback]
        hooks.clear()
        if commit_sent and rollback:
            # The COMMIT failed and may have happened: keep the Redis reservations (a
            # rebuild counts them if their orders exist and drops them when stale if not)
            # rather than give back units SQL may hold.
            log.warning("a COMMIT failed with its outcome unknown; Redis reservations kept")
            return
        _run(rollback)


# --- SQL ----------------------------------------------------------------------------------


# PostgreSQL, the HTTP buy path: the guarded UPDATE of the hot deal row and the COMMIT go
# to the server in ONE round trip (simple query protocol, integers only), so the row lock
# is held for microseconds inside the server, never while this process waits for its GIL
# or for the WAL to reach disk (asynchronous commit; the unit of work then waits for the
# flush before answering: ``kit.db.wait_for_durability``). Sold out aborts the DO block,
# so the COMMIT after it never runs and the transaction rolls back.
_PG_TAKE_AND_COMMIT = (
    "SET LOCAL synchronous_commit TO OFF; "
    "DO $$BEGIN "
    "UPDATE deal_items SET available = available - {q}, reserved = reserved + {q} "
    "WHERE id = {item} AND available >= {q}; "
    "IF NOT FOUND THEN RAISE EXCEPTION 'juxing_sold_out' USING ERRCODE = 'JX001'; END IF; "
    "END$$; COMMIT"
)


def _owns_its_transaction(session: Session) -> bool:
    """PostgreSQL, and the session's transaction is the connection's own (not a savepoint
    inside a transaction someone else will commit, as in the test harness)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or not isinstance(session.bind, Engine):
        return False
    return not session.connection().in_nested_transaction()


def _take_and_commit_pg(session: Session, item_id: int, quantity: int) -> None:
    import psycopg

    driver = session.connection().connection.driver_connection
    sql = _PG_TAKE_AND_COMMIT.format(item=int(item_id), q=int(quantity))
    try:
        with driver.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(sql.encode())
    except psycopg.Error as exc:
        if exc.sqlstate == "JX001":
            raise sold_out() from None
        raise
    session.info[ASYNC_COMMIT] = True


# ``SqlStock.hold_many``: the guarded holding upsert of ``take`` as plain SQL (hot path).
_SQLITE_HOLD = (
    "INSERT INTO deal_holdings (deal_item_id, shopper_id, quantity) VALUES (?, ?, ?) "
    "ON CONFLICT (deal_item_id, shopper_id) DO UPDATE "
    "SET quantity = deal_holdings.quantity + excluded.quantity "
    "WHERE deal_holdings.quantity + excluded.quantity <= ? RETURNING quantity"
)
_PG_HOLD = (
    "INSERT INTO deal_holdings (deal_item_id, shopper_id, quantity) "
    "SELECT %(item)s, t.s, t.q FROM unnest(%(shoppers)s::bigint[], %(qtys)s::int[]) AS t(s, q) "
    "ON CONFLICT (deal_item_id, shopper_id) DO UPDATE "
    "SET quantity = deal_holdings.quantity + excluded.quantity "
    "WHERE deal_holdings.quantity + excluded.quantity <= %(limit)s RETURNING shopper_id"
)


class SqlStock:
    """Guarded conditional updates on ``deal_items`` and ``deal_holdings``."""

    name = "sql"

    def __init__(self) -> None:
        self._statements: dict[str, tuple[Any, Any]] = {}

    def _take_statements(self, dialect: str) -> tuple[Any, Any]:
        """The two guarded statements of ``take``, built once per dialect (hot path)."""
        built = self._statements.get(dialect)
        if built is None:
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            holdings = cast(Table, DealHolding.__table__)
            upsert = insert(holdings).values(
                deal_item_id=bindparam("item_id"),
                shopper_id=bindparam("shopper_id"),
                quantity=bindparam("quantity"),
            )
            guarded: Any = upsert.on_conflict_do_update(
                index_elements=[holdings.c.deal_item_id, holdings.c.shopper_id],
                set_={"quantity": holdings.c.quantity + upsert.excluded.quantity},
                where=holdings.c.quantity + upsert.excluded.quantity <= bindparam("limit"),
            ).returning(holdings.c.quantity)
            items = cast(Table, DealItem.__table__)
            take = (
                update(items)
                .where(
                    items.c.id == bindparam("item_id"), items.c.available >= bindparam("quantity")
                )
                .values(
                    available=items.c.available - bindparam("quantity"),
                    reserved=items.c.reserved + bindparam("quantity"),
                )
            )
            built = (guarded, take)
            self._statements[dialect] = built
        return built

    def take(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        token: str,
        at_commit: bool = False,
    ) -> None:
        upsert, take = self._take_statements(session.get_bind().dialect.name)
        params = {
            "item_id": item.id,
            "shopper_id": shopper_id,
            "quantity": quantity,
            "limit": item.per_user_limit,
        }
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT.
        if session.execute(upsert, params).first() is None:
            raise over_limit(item.per_user_limit)

        def take_now() -> None:
            if rowcount(session.execute(take, params)) != 1:
                raise sold_out()

        if at_commit and _owns_its_transaction(session):
            before_commit(session, lambda: _take_and_commit_pg(session, item.id, quantity))
        elif at_commit:
            # The hot row is then locked from this UPDATE to the COMMIT that follows it in
            # the same call, not while the request's response is built and scheduled.
            before_commit(session, take_now)
        else:
            take_now()

    def hold_many(
        self, session: Session, *, item: ItemRef, holds: list[tuple[int, int]]
    ) -> list[bool]:
        """``take``'s guarded holding upsert for several ``(shopper_id, quantity)`` of one
        item, in that order (whether each stayed within the per-user limit): one statement
        per round of distinct shoppers on PostgreSQL, a plain DB-API call each on SQLite."""
        conn = session.connection()
        driver = conn.connection.driver_connection
        if conn.dialect.name != "postgresql":
            cur = driver.cursor()  # type: ignore[union-attr]
            try:
                return [
                    cur.execute(_SQLITE_HOLD, (item.id, shopper, q, item.per_user_limit)).fetchone()
                    is not None
                    for shopper, q in holds
                ]
            finally:
                cur.close()
        ok = [False] * len(holds)
        todo = list(range(len(holds)))
        while todo:  # one statement may not touch a row twice: one round per repeat
            now: list[int] = []
            later: list[int] = []
            seen: set[int] = set()
            for i in todo:
                (later if holds[i][0] in seen else now).append(i)
                seen.add(holds[i][0])
            todo = later
            params = {
                "item": item.id,
                "shoppers": [holds[i][0] for i in now],
                "qtys": [holds[i][1] for i in now],
                "limit": item.per_user_limit,
            }
            with driver.cursor() as cur:  # type: ignore[union-attr]
                cur.execute(_PG_HOLD, params)
                within = {row[0] for row in cur.fetchall()}
            for i in now:
                ok[i] = holds[i][0] in within
        return ok

    def _move(self, session: Session, item_id: int, **deltas: int) -> None:
        values = {name: getattr(DealItem, name) + delta for name, delta in deltas.items()}
        guards = [getattr(DealItem, name) >= -delta for name, delta in deltas.items() if delta < 0]
        done = session.execute(
            update(DealItem)
            .where(DealItem.id == item_id, *guards)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(done) != 1:  # pragma: no cover - would mean the counters are corrupt
            raise Conflict("Deal stock counters disagree.", code="stock_inconsistent")

    def _unhold(self, session: Session, item_id: int, shopper_id: int, quantity: int) -> None:
        session.execute(
            update(DealHolding)
            .where(
                DealHolding.deal_item_id == item_id,
                DealHolding.shopper_id == shopper_id,
                DealHolding.quantity >= quantity,
            )
            .values(quantity=DealHolding.quantity - quantity)
            .execution_options(synchronize_session=False)
        )

    def release(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, op_id: str
    ) -> None:
        # Rows in the same order as in ``take`` (the shopper's holding, then the hot deal
        # row), so that a cancel and a buy of one shopper never deadlock.
        self._unhold(session, item.id, shopper_id, quantity)
        self._move(session, item.id, available=quantity, reserved=-quantity)

    def sell(self, session: Session, *, item: ItemRef, quantity: int, op_id: str) -> None:
        self._move(session, item.id, reserved=-quantity, sold=quantity)

    def refund(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        restock: bool,
        op_id: str,
    ) -> None:
        self._unhold(session, item.id, shopper_id, quantity)  # holding first, as in ``take``
        if restock:
            self._move(session, item.id, sold=-quantity, available=quantity)


# --- Redis --------------------------------------------------------------------------------

# KEYS: stock, users, pending. ARGV: qty, shopper, limit, token, now_ms.
# Returns 1 taken, 0 sold out, -1 over the per-user limit, -2 counters not loaded.
RESERVE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local q = tonumber(ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if held + q > tonumber(ARGV[3]) then return -1 end
local avail = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
if avail < q then return 0 end
redis.call('HINCRBY', KEYS[1], 'available', -q)
redis.call('HINCRBY', KEYS[1], 'reserved', q)
redis.call('HINCRBY', KEYS[2], ARGV[2], q)
redis.call('HSET', KEYS[3], ARGV[4], ARGV[2] .. ':' .. ARGV[1] .. ':' .. ARGV[5])
return 1
"""

# RESERVE_LUA for several takes of one item, in order. KEYS: stock, users, pending.
# ARGV: limit, now_ms, then (shopper, qty, token) for each take. Returns one result each.
RESERVE_MANY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local limit, now = tonumber(ARGV[1]), ARGV[2]
local avail = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
local out = {}
for i = 3, #ARGV, 3 do
  local shopper, q, token = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local held = tonumber(redis.call('HGET', KEYS[2], shopper) or '0')
  if held + q > limit then
    out[#out + 1] = -1
  elseif avail < q then
    out[#out + 1] = 0
  else
    avail = avail - q
    redis.call('HINCRBY', KEYS[1], 'available', -q)
    redis.call('HINCRBY', KEYS[1], 'reserved', q)
    redis.call('HINCRBY', KEYS[2], shopper, q)
    redis.call('HSET', KEYS[3], token, shopper .. ':' .. q .. ':' .. now)
    out[#out + 1] = 1
  end
end
return out
"""

# How many of the tokens (ARGV) are still pending. KEYS: pending.
PENDING_COUNT_LUA = """
local n = 0
for i = 1, #ARGV do n = n + redis.call('HEXISTS', KEYS[1], ARGV[i]) end
return n
"""

# Undo a reservation whose SQL transaction rolled back. KEYS: stock, users, pending. ARGV: token.
UNDO_LUA = """
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local shopper, q = string.match(v, '^(%d+):(%d+):')
q = tonumber(q)
redis.call('HINCRBY', KEYS[1], 'available', q)
redis.call('HINCRBY', KEYS[1], 'reserved', -q)
redis.call('HINCRBY', KEYS[2], shopper, -q)
return 1
"""

# Apply a committed transition once, remembering its delta. KEYS: stock, users, ops (hash).
# REBUILD_LUA re-applies a remembered delta that its SQL snapshot does not reflect.
# ARGV: op_id, d_available, d_reserved, d_sold, shopper, d_user.
OP_LUA = """
local delta = ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5] .. ':' .. ARGV[6]
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- Counters not loaded (Redis restarted, a rebuild may be reading SQL right now): record
  -- the delta so that the rebuild applies it unless its snapshot already reflects it.
  redis.call('HSETNX', KEYS[3], ARGV[1], delta)
  return -2
end
if redis.call('HSETNX', KEYS[3], ARGV[1], delta) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'available', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'reserved', tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 'sold', tonumber(ARGV[4]))
if tonumber(ARGV[6]) ~= 0 then redis.call('HINCRBY', KEYS[2], ARGV[5], tonumber(ARGV[6])) end
return 1
"""

# Rebuild from one consistent SQL snapshot. KEYS: stock, users, pending, ops.
# ARGV: available, reserved, sold, now_ms, stale_ms, n_users, n_known, n_ops,
#       then n_users (shopper, qty) pairs, n_known tokens in the snapshot, n_ops op ids
#       the snapshot reflects.
# - a pending reservation in the snapshot is dropped (counted from SQL); one not in it is
#   kept and counted unless stale (its request died before committing);
# - an applied op the snapshot does not reflect yet (committed after the snapshot was read)
#   is re-applied; the snapshot's ops are recorded as applied so a late hook skips them.
REBUILD_LUA = """
local available, reserved, sold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now, stale = tonumber(ARGV[4]), tonumber(ARGV[5])
local nu, nk, no = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
local users = {}
for _ = 1, nu do users[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
local known = {}
for _ = 1, nk do known[ARGV[i]] = true; i = i + 1 end
local reflected = {}
for _ = 1, no do reflected[ARGV[i]] = true; i = i + 1 end
local applied = redis.call('HGETALL', KEYS[4])
local seen = {}
for j = 1, #applied, 2 do
  local op, delta = applied[j], applied[j + 1]
  seen[op] = true
  if not reflected[op] then
    local da, dr, ds, shopper, du = string.match(delta, '^(-?%d+):(-?%d+):(-?%d+):(%d+):(-?%d+)$')
    available = available + tonumber(da)
    reserved = reserved + tonumber(dr)
    sold = sold + tonumber(ds)
    users[shopper] = (users[shopper] or 0) + tonumber(du)
  end
end
for op, _ in pairs(reflected) do
  if not seen[op] then redis.call('HSET', KEYS[4], op, '0:0:0:0:0') end
end
local pending = redis.call('HGETALL', KEYS[3])
local kept = 0
for j = 1, #pending, 2 do
  local token, v = pending[j], pending[j + 1]
  local shopper, q, at = string.match(v, '^(%d+):(%d+):(%d+)$')
  q = tonumber(q)
  if known[token] or (now - tonumber(at)) > stale then
    redis.call('HDEL', KEYS[3], token)
  else
    available = available - q
    reserved = reserved + q
    users[shopper] = (users[shopper] or 0) + q
    kept = kept + 1
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'available', available, 'reserved', reserved, 'sold', sold)
for shopper, q in pairs(users) do
  if q > 0 then redis.call('HSET', KEYS[2], shopper, q) end
end
return {available, reserved, sold, kept}
"""


def redis_keys(item_id: int) -> tuple[str, str, str, str]:
    """The Redis keys of one deal item: stock, users, pending, ops (one hash slot)."""
    base = f"juxing:deal:{{{item_id}}}"
    return f"{base}:stock", f"{base}:users", f"{base}:pending", f"{base}:ops"


class RedisStock:
    """Lua scripts on Redis for the hot path; SQL stays the durable record of orders."""

    name = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = client.register_script(RESERVE_LUA)
        self._reserve_many = client.register_script(RESERVE_MANY_LUA)
        self._pending_count = client.register_script(PENDING_COUNT_LUA)
        self._undo = client.register_script(UNDO_LUA)
        self._op = client.register_script(OP_LUA)
        self._rebuild = client.register_script(REBUILD_LUA)

    def take(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        token: str,
        at_commit: bool = False,
    ) -> None:
        stock, users, pending, _ops = redis_keys(item.id)
        args: list[Any] = [
            quantity,
            shopper_id,
            item.per_user_limit,
            token,
            int(time.time() * 1000),
        ]
        try:
            result = self._reserve(keys=[stock, users, pending], args=args)
            if result == -2:  # first use, or Redis lost its data: load from SQL once
                self.rebuild(session, item=item, own_token=token, only_if_missing=True)
                result = self._reserve(keys=[stock, users, pending], args=args)
        except redis.RedisError as exc:
            raise ServiceUnavailable("Deal stock is unavailable; try again.") from exc
        if result == 0:
            raise sold_out()
        if result == -1:
            raise over_limit(item.per_user_limit)
        if result != 1:  # pragma: no cover
            raise ServiceUnavailable("Deal stock is unavailable; try again.")
        on_rollback(session, lambda: self._undo(keys=[stock, users, pending], args=[token]))

        def still_held() -> None:
            # Redis lost its data since the take (a restart; a rebuild from SQL cannot see
            # this uncommitted order): do not commit an order whose units no counter holds.
            try:
                held = self.client.hexists(pending, token)
            except redis.RedisError as exc:
                raise ServiceUnavailable("Deal stock is unavailable; try again.") from exc
            if not held:
                raise ServiceUnavailable(
                    "Deal stock was reset while buying; try again.", code="stock_reset"
                )

        before_commit(session, still_held)

    def take_many(
        self, session: Session, *, item: ItemRef, takes: list[tuple[int, int, str]]
    ) -> list[int]:
        """Several ``take``s of one item (``(shopper_id, quantity, token)`` each) in one round
        trip; per take 1 (held), 0 (sold out) or -1 (over the per-user limit). As with
        ``take``, what was held is given back if the transaction rolls back, and the commit
        checks (one round trip for all) that Redis still holds it."""
        stock, users, pending, _ops = redis_keys(item.id)
        keys = [stock, users, pending]

        def run(batch: list[tuple[int, int, str]]) -> list[int]:
            args: list[Any] = [item.per_user_limit, int(time.time() * 1000)]
            for shopper_id, quantity, token in batch:
                args += (shopper_id, quantity, token)
            out = [int(r) for r in self._reserve_many(keys=keys, args=args)]
            return [-2] * len(batch) if out == [-2] else out

        try:
            results = run(takes)
            if -2 in results:  # first use, or Redis lost its data: load from SQL once
                self.rebuild(session, item=item, only_if_missing=True)
                again = [i for i, r in enumerate(results) if r == -2]
                for i, r in zip(again, run([takes[i] for i in again]), strict=True):
                    results[i] = r
        except redis.RedisError as exc:
            raise ServiceUnavailable("Deal stock is unavailable; try again.") from exc
        if any(r not in (1, 0, -1) for r in results):  # pragma: no cover
            raise ServiceUnavailable("Deal stock is unavailable; try again.")
        held = [token for (_s, _q, token), r in zip(takes, results, strict=True) if r == 1]
        if not held:
            return results

        def undo() -> None:
            pipe = self.client.pipeline(transaction=False)
            for token in held:
                self._undo(keys=keys, args=[token], client=pipe)
            pipe.execute()

        on_rollback(session, undo)

        def still_held() -> None:
            try:
                present = int(self._pending_count(keys=[pending], args=held))
            except redis.RedisError as exc:
                raise ServiceUnavailable("Deal stock is unavailable; try again.") from exc
            if present != len(held):
                raise ServiceUnavailable(
                    "Deal stock was reset while buying; try again.", code="stock_reset"
                )

        before_commit(session, still_held)
        return results

    def _after(
        self,
        session: Session,
        item_id: int,
        op_id: str,
        *,
        available: int = 0,
        reserved: int = 0,
        sold: int = 0,
        shopper_id: int = 0,
        user: int = 0,
    ) -> None:
        stock, users, _pending, ops = redis_keys(item_id)
        args: list[Any] = [op_id, available, reserved, sold, shopper_id, user]
        on_commit(session, lambda: self._op(keys=[stock, users, ops], args=args))

    def release(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, op_id: str
    ) -> None:
        self._after(
            session,
            item.id,
            op_id,
            available=quantity,
            reserved=-quantity,
            shopper_id=shopper_id,
            user=-quantity,
        )

    def sell(self, session: Session, *, item: ItemRef, quantity: int, op_id: str) -> None:
        self._after(session, item.id, op_id, reserved=-quantity, sold=quantity)

    def refund(
        self,
        session: Session,
        *,
        item: ItemRef,
        shopper_id: int,
        quantity: int,
        restock: bool,
        op_id: str,
    ) -> None:
        self._after(
            session,
            item.id,
            op_id,
            available=quantity if restock else 0,
            sold=-quantity if restock else 0,
            shopper_id=shopper_id,
            user=-quantity,
        )

    def read(self, item_id: int) -> dict[str, int] | None:
        """The live counters, or None when not loaded."""
        raw: dict[bytes, bytes] = cast(Any, self.client.hgetall(redis_keys(item_id)[0]))
        if not raw:
            return None
        return {k.decode(): int(v) for k, v in raw.items()}

    def rebuild(
        self,
        session: Session,
        *,
        item: ItemRef,
        own_token: str | None = None,
        only_if_missing: bool = False,
    ) -> dict[str, int] | None:
        """Rebuild the Redis counters of one deal item from SQL (after a crash or restart).

        Exact while buyers are active: SQL is read in ONE statement (one snapshot);
        reservations not in it keep their pending token and stay counted; operations
        applied after the snapshot are re-applied from their recorded deltas; operations in
        the snapshot are marked applied so a late after-commit hook skips them. Rebuilds of
        one item are serialized by a Redis lock. ``own_token`` is the caller's own
        uncommitted reservation, not to be counted from SQL.
        """
        with self.client.lock(
            f"juxing:deal:{{{item.id}}}:rebuild", timeout=60, blocking_timeout=30
        ):
            if only_if_missing and self.client.exists(redis_keys(item.id)[0]):
                return None
            snap = snapshot(
                session, item_id=item.id, deal_stock=item.deal_stock, exclude_token=own_token
            )
            users = [x for shopper, q in snap.holdings.items() for x in (shopper, q)]
            args: list[Any] = [
                snap.available,
                snap.reserved,
                snap.sold,
                int(time.time() * 1000),
                STALE_RESERVATION_MS,
                len(snap.holdings),
                len(snap.tokens),
                len(snap.ops),
                *users,
                *snap.tokens,
                *snap.ops,
            ]
            available, reserved, sold, kept = self._rebuild(
                keys=list(redis_keys(item.id)), args=args
            )
        log.info(
            "rebuilt redis stock of deal item %s: available=%s reserved=%s sold=%s pending=%s",
            item.id,
            available,
            reserved,
            sold,
            kept,
        )
        return {"available": available, "reserved": reserved, "sold": sold, "pending": kept}


@dataclass
class Counts:
    """What a deal item's counters must be according to its orders in SQL."""

    available: int
    reserved: int
    sold: int
    holdings: dict[int, int]
    tokens: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)


def snapshot(
    session: Session, *, item_id: int, deal_stock: int, exclude_token: str | None = None
) -> Counts:
    """Counters, per-shopper holdings, reservation tokens and applied operation ids of a deal
    item, from its orders, read in one SQL statement (so one consistent snapshot)."""
    rows = session.execute(
        select(
            Order.id,
            Order.shopper_id,
            Order.status,
            Order.paid_at,
            Order.reservation_token,
            OrderLine.id,
            OrderLine.quantity,
            OrderLine.refunded_quantity,
            OrderLine.restocked_quantity,
            RefundLine.refund_id,
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .outerjoin(RefundLine, RefundLine.order_line_id == OrderLine.id)
        .where(OrderLine.deal_item_id == item_id)
    ).all()
    reserved = sold = 0
    holdings: dict[int, int] = {}
    tokens: list[str] = []
    ops: list[str] = []
    seen_lines: set[int] = set()
    seen_orders: set[int] = set()
    for (
        order_id,
        shopper_id,
        status,
        paid_at,
        token,
        line_id,
        qty,
        refunded,
        restocked,
        refund_id,
    ) in rows:
        if refund_id is not None:
            ops.append(f"r:{refund_id}:{item_id}")
        if token is not None and token == exclude_token:
            continue
        if order_id not in seen_orders:
            seen_orders.add(order_id)
            if token is not None:
                tokens.append(token)
            if status == OrderStatus.CANCELLED.value:
                ops.append(f"c:{order_id}:{item_id}")
            if paid_at is not None:
                ops.append(f"p:{order_id}:{item_id}")
        if line_id in seen_lines:
            continue
        seen_lines.add(line_id)
        if status == OrderStatus.PENDING_PAYMENT.value:
            reserved += qty
        elif status in HELD_STATUSES:
            sold += qty - restocked
        if status != OrderStatus.CANCELLED.value and qty - refunded > 0:
            holdings[shopper_id] = holdings.get(shopper_id, 0) + qty - refunded
    return Counts(
        available=deal_stock - reserved - sold,
        reserved=reserved,
        sold=sold,
        holdings=holdings,
        tokens=tokens,
        ops=sorted(set(ops)),
    )


def counts_from_orders(
    session: Session, *, item_id: int, deal_stock: int, exclude_token: str | None = None
) -> Counts:
    """What the counters of a deal item must be, computed from its orders in SQL."""
    return snapshot(session, item_id=item_id, deal_stock=deal_stock, exclude_token=exclude_token)


def backend_for(item_backend: str, redis_client: redis.Redis | None) -> StockBackend:
    """The backend holding a deal item's live counters."""
    if item_backend == "redis":
        if redis_client is None:
            raise ServiceUnavailable(
                "This deal's stock lives in Redis, which is not configured.",
                code="stock_backend_unavailable",
            )
        return _redis_backend(redis_client)
    return SQL_STOCK


SQL_STOCK = SqlStock()
_redis_backends: dict[int, RedisStock] = {}


def _redis_backend(client: redis.Redis) -> RedisStock:
    backend = _redis_backends.get(id(client))
    if backend is None or backend.client is not client:
        backend = RedisStock(client)
        _redis_backends[id(client)] = backend
    return backend
