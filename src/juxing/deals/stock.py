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
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from sqlalchemy import case, event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from juxing.kit.errors import Conflict, ServiceUnavailable, Unprocessable
from juxing.models.deals import DealHolding, DealItem
from juxing.models.orders import Order, OrderLine, OrderStatus, Refund, RefundLine

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


@dataclass(frozen=True)
class ItemRef:
    """What a backend needs to know about a deal item."""

    id: int
    deal_stock: int
    per_user_limit: int


class StockBackend(Protocol):
    name: str

    def take(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, token: str
    ) -> None:
        """Hold ``quantity`` units for the shopper (available -> reserved) or raise."""

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


def on_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the session's outermost transaction has committed."""
    _hooks(session)["commit"].append(fn)


def on_rollback(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` if the session's outermost transaction ends without committing."""
    _hooks(session)["rollback"].append(fn)


def _hooks(session: Session) -> dict[str, list[Callable[[], None]]]:
    hooks = session.info.get("juxing_stock_hooks")
    if hooks is None:
        hooks = {"commit": [], "rollback": []}
        session.info["juxing_stock_hooks"] = hooks
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    return hooks


def _run(fns: list[Callable[[], None]]) -> None:
    for fn in fns:
        try:
            fn()
        except Exception:  # Redis down: reconciliation repairs the counters
            log.exception("stock hook failed; reconciliation will repair the counters")


def _after_commit(session: Session) -> None:
    hooks = session.info.get("juxing_stock_hooks")
    if hooks:
        commit, hooks["commit"], hooks["rollback"] = hooks["commit"], [], []
        _run(commit)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    hooks = session.info.get("juxing_stock_hooks")
    if hooks:
        rollback, hooks["commit"], hooks["rollback"] = hooks["rollback"], [], []
        _run(rollback)


# --- SQL ----------------------------------------------------------------------------------


class SqlStock:
    """Guarded conditional updates on ``deal_items`` and ``deal_holdings``."""

    name = "sql"

    def take(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, token: str
    ) -> None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        table = DealHolding.__table__
        stmt = insert(table).values(deal_item_id=item.id, shopper_id=shopper_id, quantity=quantity)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.deal_item_id, table.c.shopper_id],
            set_={"quantity": table.c.quantity + stmt.excluded.quantity},
            where=table.c.quantity + stmt.excluded.quantity <= item.per_user_limit,
        )
        if session.execute(stmt).rowcount != 1:
            raise over_limit(item.per_user_limit)
        taken = session.execute(
            update(DealItem)
            .where(DealItem.id == item.id, DealItem.available >= quantity)
            .values(available=DealItem.available - quantity, reserved=DealItem.reserved + quantity)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            raise sold_out()

    def _move(self, session: Session, item_id: int, **deltas: int) -> None:
        values = {name: getattr(DealItem, name) + delta for name, delta in deltas.items()}
        guards = [getattr(DealItem, name) >= -delta for name, delta in deltas.items() if delta < 0]
        done = session.execute(
            update(DealItem)
            .where(DealItem.id == item_id, *guards)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # pragma: no cover - would mean the counters are corrupt
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
        self._move(session, item.id, available=quantity, reserved=-quantity)
        self._unhold(session, item.id, shopper_id, quantity)

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
        if restock:
            self._move(session, item.id, sold=-quantity, available=quantity)
        self._unhold(session, item.id, shopper_id, quantity)


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

# Apply a committed transition once. KEYS: stock, users, ops.
# ARGV: op_id, d_available, d_reserved, d_sold, shopper, d_user.
OP_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'available', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'reserved', tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 'sold', tonumber(ARGV[4]))
if tonumber(ARGV[6]) ~= 0 then redis.call('HINCRBY', KEYS[2], ARGV[5], tonumber(ARGV[6])) end
return 1
"""

# Rebuild from SQL. KEYS: stock, users, pending, ops.
# ARGV: available, reserved, sold, now_ms, stale_ms, n_users, n_known, n_ops,
#       then n_users (shopper, qty) pairs, n_known tokens found in SQL, n_ops applied op ids.
REBUILD_LUA = """
local available, reserved, sold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now, stale = tonumber(ARGV[4]), tonumber(ARGV[5])
local nu, nk, no = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
local users = {}
for _ = 1, nu do users[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
local known = {}
for _ = 1, nk do known[ARGV[i]] = true; i = i + 1 end
for _ = 1, no do redis.call('SADD', KEYS[4], ARGV[i]); i = i + 1 end
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
        self._undo = client.register_script(UNDO_LUA)
        self._op = client.register_script(OP_LUA)
        self._rebuild = client.register_script(REBUILD_LUA)

    def take(
        self, session: Session, *, item: ItemRef, shopper_id: int, quantity: int, token: str
    ) -> None:
        stock, users, pending, _ops = redis_keys(item.id)
        args = [quantity, shopper_id, item.per_user_limit, token, int(time.time() * 1000)]
        try:
            result = self._reserve(keys=[stock, users, pending], args=args)
            if result == -2:
                self.rebuild(session, item=item)
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
        args = [op_id, available, reserved, sold, shopper_id, user]
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
        raw = self.client.hgetall(redis_keys(item_id)[0])
        if not raw:
            return None
        return {k.decode(): int(v) for k, v in raw.items()}

    def rebuild(self, session: Session, *, item: ItemRef) -> dict[str, int]:
        """Rebuild the Redis counters of one deal item from SQL (after a crash or restart).

        Safe while buyers are active: reservations not yet committed to SQL keep their
        pending token and stay counted; operations already reflected in SQL are marked
        applied so a late after-commit hook cannot apply them twice.
        """
        truth = counts_from_orders(session, item_id=item.id, deal_stock=item.deal_stock)
        tokens = session.scalars(
            select(Order.reservation_token)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .where(OrderLine.deal_item_id == item.id, Order.reservation_token.is_not(None))
        ).all()
        ops = applied_ops(session, item_id=item.id)
        users = [x for shopper, q in truth.holdings.items() for x in (shopper, q)]
        args: list[Any] = [
            truth.available,
            truth.reserved,
            truth.sold,
            int(time.time() * 1000),
            STALE_RESERVATION_MS,
            len(truth.holdings),
            len(tokens),
            len(ops),
            *users,
            *tokens,
            *ops,
        ]
        available, reserved, sold, kept = self._rebuild(keys=list(redis_keys(item.id)), args=args)
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
    available: int
    reserved: int
    sold: int
    holdings: dict[int, int]


def counts_from_orders(session: Session, *, item_id: int, deal_stock: int) -> Counts:
    """What the counters of a deal item must be, computed from its orders in SQL."""
    rows = session.execute(
        select(
            Order.shopper_id,
            func.sum(
                case(
                    (Order.status == OrderStatus.PENDING_PAYMENT.value, OrderLine.quantity),
                    else_=0,
                )
            ),
            func.sum(
                case(
                    (
                        Order.status.in_(HELD_STATUSES),
                        OrderLine.quantity - OrderLine.restocked_quantity,
                    ),
                    else_=0,
                )
            ),
            func.sum(
                case(
                    (
                        Order.status != OrderStatus.CANCELLED.value,
                        OrderLine.quantity - OrderLine.refunded_quantity,
                    ),
                    else_=0,
                )
            ),
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(OrderLine.deal_item_id == item_id)
        .group_by(Order.shopper_id)
    ).all()
    reserved = sum(int(r[1] or 0) for r in rows)
    sold = sum(int(r[2] or 0) for r in rows)
    holdings = {int(r[0]): int(r[3] or 0) for r in rows if int(r[3] or 0) > 0}
    return Counts(
        available=deal_stock - reserved - sold, reserved=reserved, sold=sold, holdings=holdings
    )


def applied_ops(session: Session, *, item_id: int) -> list[str]:
    """Operation ids of the transitions SQL already reflects for a deal item's orders."""
    orders = session.execute(
        select(Order.id, Order.status, Order.paid_at)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(OrderLine.deal_item_id == item_id)
    ).all()
    ops: list[str] = []
    for order_id, status, paid_at in orders:
        if status == OrderStatus.CANCELLED.value:
            ops.append(f"c:{order_id}:{item_id}")
        if paid_at is not None:
            ops.append(f"p:{order_id}:{item_id}")
    refunds = session.scalars(
        select(RefundLine.refund_id)
        .join(OrderLine, OrderLine.id == RefundLine.order_line_id)
        .join(Refund, Refund.id == RefundLine.refund_id)
        .where(OrderLine.deal_item_id == item_id)
    ).all()
    ops += [f"r:{refund_id}:{item_id}" for refund_id in refunds]
    return ops


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
