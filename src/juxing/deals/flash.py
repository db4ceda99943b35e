"""Placing many buys in one unit of work (group commit): the flash-sale hot path.

The buy endpoint's fast path (``deals.fastbuy``) gathers the plain buys (a deal item and a
quantity, from a bearer token) that arrive while the previous group is being written, and
``place_buys`` places the whole group in one transaction: one query resolves every token,
one reads every deal item, each item's stock is taken once for the group (one guarded
UPDATE of the hot row on SQL, one pipelined round trip of the Lua script on Redis), the
orders and their lines are inserted with one statement each, and one COMMIT (one WAL flush
or fsync) makes them all durable before any of them is answered.

Each buy gets the answer ``orders.reserve`` would give it alone, from the same checks in the
same order: invalid token (401), not a shopper (403), no such deal item (404), not on sale,
live-only, group deal, over the per-user limit (422), sold out (409). The invariants are the
stock backends' own: the per-user holding is the same guarded upsert, the hot row the same
guarded UPDATE, the Redis side the same script.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from psycopg.rows import namedtuple_row
from pydantic import TypeAdapter
from sqlalchemy import (
    String,
    Table,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from juxing.deals.events import OrderPlaced
from juxing.deals.orders import (
    Buying,
    _item_ref,
    _not_live,
    group_required,
    live_only_refused,
    no_such_item,
)
from juxing.deals.schemas import OrderLineOut, OrderOut
from juxing.deals.stock import (
    SQL_STOCK,
    RedisStock,
    backend_for,
    over_limit,
    rowcount,
    sold_out,
)
from juxing.kit.auth import TOKEN_TOUCH_AFTER, account_disabled, invalid_token, role_required
from juxing.kit.errors import JuxingError
from juxing.kit.idempotency import Claim, claim_many, principal_of, settle_many
from juxing.kit.ratelimit import LimitRule, RateLimiter, check_users
from juxing.kit.signals import publish_many
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, Role, User, UserRole
from juxing.models.catalog import Product, Sku
from juxing.models.content import LiveRoomItem
from juxing.models.deals import Campaign, DealItem
from juxing.models.orders import Order, OrderLine, OrderStatus


@dataclass(slots=True)
class Buy:
    """One buy of a group: what was asked, and (after ``place_buys``) its outcome: the
    placed order or the error to answer."""

    token_hash: str
    deal_item_id: int
    quantity: int
    visitor_id: str | None = None
    # ``Idempotency-Key`` and the SHA-256 of the request body (kit/idempotency.py's rules)
    idempotency_key: str | None = None
    request_hash: str = ""
    outcome: Placed | Replayed | JuxingError | None = None
    shopper_id: int = 0
    token: str = ""  # the Redis reservation token
    rate_counted: bool = False  # the per-user rate limit has counted this buy
    rate_refusal: JuxingError | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """The stored first response to this buy's ``Idempotency-Key``."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Placed:
    """A placed order: its row and its one line's row, as inserted (with their ids)."""

    order: dict[str, Any]
    line: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Caller:
    user_id: int
    live: bool
    active: bool
    shopper: bool


_TOKENS = cast(Table, ApiToken.__table__)
_ITEM = cast(Table, DealItem.__table__)
_ORDERS, _LINES = cast(Table, Order.__table__), cast(Table, OrderLine.__table__)


# Every token of the group with its user, in one query (the kit's ``_user_from_bearer``
# for many): validity columns, the user's state and whether they are a shopper.
def _callers_query(pg: bool) -> Any:
    tokens: Any = _TOKENS
    hashes: Any = None
    if pg:  # one array parameter: one statement text (prepared once) for any number
        hashes = (
            func.unnest(bindparam("hashes", type_=ARRAY(String)))
            .table_valued("hash")
            .render_derived(name="h")
        )
        tokens = hashes.join(_TOKENS, _TOKENS.c.token_hash == hashes.c.hash)
    query = (
        select(
            ApiToken.token_hash,
            ApiToken.id,
            # ``kit.auth.token_is_live`` and the touch rule, decided by the database.
            and_(
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > bindparam("now")),
            ).label("live"),
            or_(
                ApiToken.last_used_at.is_(None), ApiToken.last_used_at < bindparam("touch_before")
            ).label("stale"),
            User.id,
            User.is_active,
            UserRole.user_id.is_not(None).label("shopper"),
        )
        .select_from(tokens)
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(UserRole, and_(UserRole.user_id == User.id, UserRole.role == Role.SHOPPER.value))
    )
    if not pg:
        query = query.where(ApiToken.token_hash.in_(bindparam("hashes", expanding=True)))
    return query


_TOUCH = (
    update(_TOKENS)
    .where(_TOKENS.c.id.in_(bindparam("ids", expanding=True)))
    .values(last_used_at=bindparam("now"))
)


# ``orders.reserve``'s lookup, for every deal item of the group.
def _items_query(one_of: Any) -> Any:
    return (
        select(
            _ITEM,
            Campaign.status.label("campaign_status"),
            Product.title.label("product_title"),
            Sku.name.label("sku_name"),
            exists()
            .where(LiveRoomItem.deal_item_id == _ITEM.c.id, LiveRoomItem.live_only.is_(True))
            .label("live_only"),
        )
        .join(Campaign, Campaign.id == _ITEM.c.campaign_id)
        .join(Product, Product.id == _ITEM.c.product_id)
        .join(Sku, Sku.id == _ITEM.c.sku_id)
        .where(one_of(_ITEM.c.id, "ids"))
    )


def _in(column: Any, name: str) -> Any:
    return column.in_(bindparam(name, expanding=True))


def _any(column: Any, name: str) -> Any:
    # PostgreSQL: one array parameter, so one statement text (prepared once) for any count.
    return column == any_(bindparam(name, type_=ARRAY(column.type)))


# The two per-group lookups, keyed by "is PostgreSQL".
_CALLERS = {False: _callers_query(False), True: _callers_query(True)}
_ITEMS = {False: _items_query(_in), True: _items_query(_any)}
_AVAILABLE = select(_ITEM.c.available).where(_ITEM.c.id == bindparam("item_id")).with_for_update()
_TAKE = (
    update(_ITEM)
    .where(_ITEM.c.id == bindparam("item_id"), _ITEM.c.available >= bindparam("take"))
    .values(
        available=_ITEM.c.available - bindparam("take"),
        reserved=_ITEM.c.reserved + bindparam("take"),
    )
)


def _lookup(
    session: Session, buys: list[Buy], now: datetime
) -> tuple[dict[str, _Caller], dict[int, Any]]:
    """Every token of the group with its caller, and every deal item it asks for; records
    token use (at most every few minutes a token). On PostgreSQL the two queries (and the
    transaction's BEGIN) go in one round trip."""
    conn = session.connection()
    hashes = sorted({b.token_hash for b in buys})
    ids = sorted({b.deal_item_id for b in buys})
    params = {"hashes": hashes, "now": now, "touch_before": now - TOKEN_TOUCH_AFTER}
    caller_rows: Sequence[Any]
    item_rows: Sequence[Any]
    if conn.dialect.name == "postgresql":
        caller_rows, item_rows = _pg_lookup(conn, params, ids)
    else:
        caller_rows = conn.execute(_CALLERS[False], params).all()
        item_rows = conn.execute(_ITEMS[False], {"ids": ids}).all()
    callers: dict[str, _Caller] = {}
    touch: list[int] = []
    for token_hash, token_id, live, stale, uid, active, shopper in caller_rows:
        callers[token_hash] = _Caller(uid, bool(live), bool(active), bool(shopper))
        if live and active and stale:
            touch.append(token_id)
    if touch:
        conn.execute(_TOUCH, {"ids": touch, "now": now})
    return callers, {row.id: row for row in item_rows}


@functools.cache
def _pg_statements() -> tuple[str, dict[str, Any], str]:
    """The two lookups as PostgreSQL text for the driver (with the callers' constants)."""
    dialect = postgresql.psycopg.dialect()
    callers = _CALLERS[True].compile(dialect=dialect)
    items = _ITEMS[True].compile(dialect=dialect)
    return str(callers), dict(callers.params), str(items)


def _pg_lookup(conn: Any, params: dict[str, Any], ids: list[int]) -> tuple[list[Any], list[Any]]:
    """Both lookups in one pipeline: the driver sends BEGIN and the two queries together and
    reads the three answers (each query is prepared by the driver once it repeats)."""
    callers_sql, defaults, items_sql = _pg_statements()
    raw = conn.connection.driver_connection
    callers = raw.cursor()
    items = raw.cursor(row_factory=namedtuple_row)
    with raw.pipeline():
        callers.execute(callers_sql, defaults | params)
        items.execute(items_sql, {"ids": ids})
    try:
        return callers.fetchall(), items.fetchall()
    finally:
        callers.close()
        items.close()


def _refused_caller(caller: _Caller | None) -> JuxingError | None:
    """What the endpoint's authentication and role dependencies would refuse."""
    if caller is None or not caller.live:
        return invalid_token()
    if not caller.active:
        return account_disabled()
    if not caller.shopper:
        return role_required(Role.SHOPPER)
    return None


def _refused_deal(buy: Buy, row: Any, now: datetime) -> JuxingError | None:
    """What ``orders.reserve`` would refuse before touching stock (its own refusals)."""
    if row is None:
        return no_such_item()
    problem = _not_live(row, row.campaign_status, now)
    if problem:
        return problem
    if row.live_only:
        return live_only_refused()  # the fast path has no live room: reserve's answer
    if buy.quantity > row.per_user_limit:
        return over_limit(row.per_user_limit)
    if row.group_size:
        return group_required()
    return None


def place_buys(
    *,
    session: Session,
    ctx: Buying,
    buys: list[Buy],
    now: datetime | None = None,
    limiter: tuple[RateLimiter, LimitRule] | None = None,
    optimistic: bool = True,
    idempotency_ttl_s: int = 86_400,
    request: tuple[str, str] = ("POST", "/api/v1/orders"),
) -> None:
    """Place a group of buys in the session's transaction; each buy's ``outcome`` is set.
    The caller commits (the orders exist once it has) and answers each buy only then.

    ``limiter``: the per-user rate limit of buying, counted once the token is resolved.
    ``optimistic``: on the SQL backend, when the lookup shows enough stock for the whole
    group, take the hot row last (locked only from there to the COMMIT); raises
    ``StockMoved`` if it no longer has it. Otherwise the row is locked first and the stock
    shared out first come, first served.
    ``Idempotency-Key``: a buy carrying one claims it after authentication, as the regular
    route does; a key already answered replays that answer (``Replayed``), one in progress
    is 409, one used for another body 422; the answer is stored in this transaction, and a
    refused buy's claim is dropped so that a retry runs again. ``request``: the method and
    path the keys were sent with."""
    now = now or utcnow()
    callers, rows = _lookup(session, buys, now)
    conn = session.connection()
    if limiter is not None:  # every buy of a known caller counted once, in one round trip
        counting = [b for b in buys if not b.rate_counted and b.token_hash in callers]
        user_ids = [callers[b.token_hash].user_id for b in counting]
        refusals = check_users(*limiter, name="buy", user_ids=user_ids)
        for buy, refusal in zip(counting, refusals, strict=True):
            buy.rate_counted, buy.rate_refusal = True, refusal  # (not again on a retry)
    authenticated: list[Buy] = []
    for buy in buys:
        caller = callers.get(buy.token_hash)
        if caller is not None and buy.rate_refusal is not None:
            buy.outcome = buy.rate_refusal
            continue
        buy.outcome = _refused_caller(caller)
        if buy.outcome is None:
            assert caller is not None
            buy.shopper_id = caller.user_id
            authenticated.append(buy)
    claims = [
        (
            buy,
            Claim(
                principal=principal_of(buy.shopper_id),
                key=buy.idempotency_key,
                method=request[0],
                path=request[1],
                request_hash=buy.request_hash,
            ),
        )
        for buy in authenticated
        if buy.idempotency_key is not None
    ]
    if claims:
        claim_many(session, [c for _b, c in claims], now=now, ttl_s=idempotency_ttl_s)
        for buy, claim in claims:
            if claim.replay is not None:
                buy.outcome = Replayed(claim.replay[0], _as_sent(claim.replay[1]))
            elif claim.error is not None:
                buy.outcome = claim.error
    groups: dict[int, list[Buy]] = {}
    for buy in authenticated:
        if buy.outcome is not None:  # replayed, or its key is busy / reused
            continue
        buy.outcome = _refused_deal(buy, rows.get(buy.deal_item_id), now)
        if buy.outcome is None:
            groups.setdefault(buy.deal_item_id, []).append(buy)
    placed: list[Buy] = []
    late: list[tuple[Any, int]] = []  # SQL items whose hot row is taken last: (item, units)
    for item_id, group in sorted(groups.items()):  # hot rows in id order across groups
        item = rows[item_id]
        try:
            backend = backend_for(item.stock_backend, ctx.redis_client)
        except JuxingError as exc:
            for buy in group:
                buy.outcome = exc
            continue
        if isinstance(backend, RedisStock):
            placed += _take_redis(session, backend, item, group)
            continue
        held = _hold_sql(session, item, group)
        units = sum(b.quantity for b in held)
        if optimistic and units <= item.available:
            placed += held  # enough stock at the lookup: the hot row is taken at the end
            late.append((item, units))
        else:
            placed += _take_sql(session, item, held)
    if placed:
        _insert(session, placed, rows, ctx, now)
    for item, units in late:
        if rowcount(conn.execute(_TAKE, {"item_id": item.id, "take": units})) != 1:
            raise StockMoved(item.id)
    if claims:
        settle_many(
            session,
            [
                (claim, 201, order_json(buy.outcome).decode())
                for buy, claim in claims
                if claim.claimed and isinstance(buy.outcome, Placed)
            ],
            [c for buy, c in claims if c.claimed and not isinstance(buy.outcome, Placed)],
        )


def _as_sent(stored: str) -> bytes:
    """A stored response body as a JSON response sends it (the one envelope's encoding)."""
    return json.dumps(json.loads(stored), ensure_ascii=False, separators=(",", ":")).encode()


class StockMoved(Exception):
    """An optimistic group found less stock at its end than at its lookup (another group
    took it meanwhile): roll back and place the group again with ``optimistic=False``."""


def _hold_sql(session: Session, item: Any, group: list[Buy]) -> list[Buy]:
    """Each buyer's guarded holding upsert (the per-user limit); the buys within their
    limit, in arrival order. A buy for more than the lookup's stock is refused at once."""
    wanted = [b for b in group if item.available >= b.quantity]
    for buy in group:
        if item.available < buy.quantity:
            buy.outcome = sold_out()  # at the lookup: refused without writing
    # Holdings in shopper order: two groups in two processes never wait on each other.
    wanted.sort(key=lambda b: b.shopper_id)
    within = SQL_STOCK.hold_many(
        session, item=_item_ref(item), holds=[(b.shopper_id, b.quantity) for b in wanted]
    )
    held: set[int] = set()
    for buy, ok in zip(wanted, within, strict=True):
        if ok:
            held.add(id(buy))
        else:
            buy.outcome = over_limit(item.per_user_limit)
    return [b for b in group if id(b) in held]


def _take_sql(session: Session, item: Any, held: list[Buy]) -> list[Buy]:
    """The hot row, locked first, for buys that may not all get stock: first come, first
    served; the others' holdings are given back."""
    if not held:
        return []
    conn = session.connection()
    available = conn.execute(_AVAILABLE, {"item_id": item.id}).scalar_one()
    won: list[Buy] = []
    for buy in held:
        if buy.quantity <= available:
            available -= buy.quantity
            won.append(buy)
        else:
            buy.outcome = sold_out()
            SQL_STOCK._unhold(session, item.id, buy.shopper_id, buy.quantity)
    take = sum(b.quantity for b in won)
    if take and rowcount(conn.execute(_TAKE, {"item_id": item.id, "take": take})) != 1:
        raise RuntimeError("deal stock moved under its row lock")  # pragma: no cover
    return won


def _take_redis(session: Session, backend: RedisStock, item: Any, group: list[Buy]) -> list[Buy]:
    """The Redis backend for one item: every take of the group in one pipelined round trip."""
    prefix = secrets.token_hex(12)  # unique per group; each buy's token adds its place
    for i, buy in enumerate(group):
        buy.token = f"{prefix}{i:x}"
    results = backend.take_many(
        session,
        item=_item_ref(item),
        takes=[(b.shopper_id, b.quantity, b.token) for b in group],
    )
    won: list[Buy] = []
    for buy, result in zip(group, results, strict=True):
        if result == 1:
            won.append(buy)
        elif result == 0:
            buy.outcome = sold_out()
        else:
            buy.outcome = over_limit(item.per_user_limit)
    return won


def _insert(
    session: Session, placed: list[Buy], rows: dict[int, Any], ctx: Buying, now: datetime
) -> None:
    """The group's orders and lines, one INSERT each (ids in the order of the rows): plain
    rows, no ORM objects (the hot path); each buy's outcome is its ``Placed``."""
    expires_at = now + timedelta(seconds=ctx.order_timeout_s)
    orders: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for buy in placed:
        item = rows[buy.deal_item_id]
        subtotal = item.deal_price_minor * buy.quantity
        orders.append(
            {
                "shopper_id": buy.shopper_id,
                "merchant_id": item.merchant_id,
                "status": OrderStatus.PENDING_PAYMENT.value,
                "currency": item.currency,
                "subtotal_minor": subtotal,
                "discount_minor": 0,
                "total_minor": subtotal,
                "refunded_minor": 0,
                "coupon_claim_id": None,
                "group_id": None,
                "visitor_id": buy.visitor_id,
                "reservation_token": buy.token or None,
                "created_at": now,
                "updated_at": now,
                "expires_at": expires_at,
            }
        )
        lines.append(
            {
                "order_id": 0,
                "sku_id": item.sku_id,
                "deal_item_id": item.id,
                "product_id": item.product_id,
                "title": f"{item.product_title} · {item.sku_name}"[:200],
                "quantity": buy.quantity,
                "unit_price_minor": item.deal_price_minor,
                "amount_minor": subtotal,
                "refunded_minor": 0,
                "refunded_quantity": 0,
                "restocked_quantity": 0,
            }
        )
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        pairs = _pg_insert(conn, orders, lines)
        for order, line, (order_id, _line_id) in zip(orders, lines, pairs, strict=True):
            order["id"] = line["order_id"] = order_id
        line_ids = [line_id for _order_id, line_id in pairs]
    else:
        order_ids = _insert_rows(conn, _ORDERS, orders)
        for order, line, order_id in zip(orders, lines, order_ids, strict=True):
            order["id"] = line["order_id"] = order_id
        line_ids = _insert_rows(conn, _LINES, lines)
    for buy, order, line, line_id in zip(placed, orders, lines, line_ids, strict=True):
        line["id"] = line_id
        buy.outcome = Placed(order, line)
    publish_many(
        session,
        [
            OrderPlaced(order_id=o["id"], shopper_id=o["shopper_id"], visitor_id=v, placed_at=now)
            for o, v in ((o, o["visitor_id"]) for o in orders)
        ],
    )


def _insert_rows(conn: Any, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their ids, in the order of the rows."""
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, rows).scalars())


# PostgreSQL: a group's orders and their lines in ONE statement whatever their number
# (arrays: one prepared text). The order ids are drawn from the sequence first, one per row
# in the rows' order (a CTE used twice is computed once), so each line knows its order's id;
# the lines' foreign keys are checked at the end of the statement, when the orders exist.
_PG_INSERT = (
    "WITH ids AS (SELECT n, nextval('orders_id_seq') AS id FROM generate_series(1, %(n)s) AS n), "
    "o AS (INSERT INTO orders (id, shopper_id, merchant_id, status, currency, subtotal_minor, "
    "discount_minor, total_minor, refunded_minor, visitor_id, reservation_token, created_at, "
    "updated_at, expires_at) "
    "SELECT ids.id, t.shopper, t.merchant, %(status)s, t.currency, t.subtotal, 0, t.subtotal, "
    "0, t.visitor, t.token, %(created)s, %(created)s, %(expires)s "
    "FROM unnest(%(shopper)b::bigint[], %(merchant)b::bigint[], %(currency)b::text[], "
    "%(subtotal)b::bigint[], %(visitor)b::text[], %(token)b::text[]) WITH ORDINALITY "
    "AS t(shopper, merchant, currency, subtotal, visitor, token, n) JOIN ids ON ids.n = t.n "
    "RETURNING id), "
    "l AS (INSERT INTO order_lines (order_id, sku_id, deal_item_id, product_id, title, "
    "quantity, unit_price_minor, amount_minor, refunded_minor, refunded_quantity, "
    "restocked_quantity) "
    "SELECT ids.id, u.sku, u.item, u.product, u.title, u.q, u.price, u.amount, 0, 0, 0 "
    "FROM unnest(%(sku)b::bigint[], %(item)b::bigint[], %(product)b::bigint[], "
    "%(title)b::text[], %(q)b::int[], %(price)b::bigint[], %(amount)b::bigint[]) "
    "WITH ORDINALITY AS u(sku, item, product, title, q, price, amount, n) "
    "JOIN ids ON ids.n = u.n RETURNING id, order_id) "
    "SELECT ids.id, l.id FROM ids JOIN l ON l.order_id = ids.id "
    "WHERE EXISTS (SELECT 1 FROM o WHERE o.id = ids.id) ORDER BY ids.n"
)


def _pg_insert(
    conn: Any, orders: list[dict[str, Any]], lines: list[dict[str, Any]]
) -> list[tuple[int, int]]:
    """(order id, line id) of each row, in the rows' order."""
    first = orders[0]
    for o in orders:  # what the statement writes as constants
        assert o["discount_minor"] == 0 and o["total_minor"] == o["subtotal_minor"]
        assert o["refunded_minor"] == 0 and o["updated_at"] == o["created_at"]
        assert o["coupon_claim_id"] is None and o["group_id"] is None
        assert o["status"] == first["status"] and o["created_at"] == first["created_at"]
        assert o["expires_at"] == first["expires_at"]
    for line in lines:
        assert line["refunded_minor"] == line["refunded_quantity"] == 0
        assert line["restocked_quantity"] == 0
    order_columns = {
        "shopper": "shopper_id",
        "merchant": "merchant_id",
        "currency": "currency",
        "subtotal": "subtotal_minor",
        "visitor": "visitor_id",
        "token": "reservation_token",
    }
    line_columns = {
        "sku": "sku_id",
        "item": "deal_item_id",
        "product": "product_id",
        "title": "title",
        "q": "quantity",
        "price": "unit_price_minor",
        "amount": "amount_minor",
    }
    params: dict[str, Any] = {name: [o[c] for o in orders] for name, c in order_columns.items()}
    params |= {name: [ln[c] for ln in lines] for name, c in line_columns.items()}
    params |= {
        "n": len(orders),
        "status": first["status"],
        "created": first["created_at"],
        "expires": first["expires_at"],
    }
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(_PG_INSERT, params)
        pairs = [(int(order_id), int(line_id)) for order_id, line_id in cur.fetchall()]
    if len(pairs) != len(orders):  # pragma: no cover - every order has its one line
        raise RuntimeError("orders and lines did not match up")
    return pairs


_ORDER_KEYS = tuple(OrderOut.model_fields)
_LINE_KEYS = tuple(OrderLineOut.model_fields)
_DATETIME = TypeAdapter(datetime)
_NOT_YET = ("paid_at", "shipped_at", "received_at", "cancelled_at", "cancel_reason")


@functools.lru_cache(maxsize=64)
def _json_datetime(value: datetime) -> str:
    return str(_DATETIME.dump_json(value)[1:-1], "ascii")


def order_json(placed: Placed) -> bytes:
    """The 201 body: the ``OrderOut`` of a just-placed order, byte for byte as pydantic
    writes it (a test holds the two equal), built without validating it again."""
    order, line = placed.order, placed.line
    out = {k: order.get(k) for k in _ORDER_KEYS}
    out["created_at"] = _json_datetime(order["created_at"])
    out["expires_at"] = _json_datetime(order["expires_at"])
    for key in _NOT_YET:
        out[key] = None
    out["lines"] = [{k: line[k] for k in _LINE_KEYS}]
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


# What differs between the bodies of a group's orders; the rest is rendered once a group.
_OWN_ORDER = ("id", "shopper_id", "subtotal_minor", "total_minor")
_OWN_LINE = ("id", "quantity", "amount_minor")
_SHARED_ORDER = tuple(k for k in _ORDER_KEYS if k not in _OWN_ORDER and k != "lines")
_SHARED_LINE = tuple(k for k in _LINE_KEYS if k not in _OWN_LINE)
_MARK = -(10**18)  # the i-th own field is rendered as _MARK - i first: no real value is


def order_bodies(placed: list[Placed]) -> list[bytes]:
    """``order_json`` of each placed order (a test holds them equal), faster for a group:
    the orders of one item placed at one time differ only in their ids, shopper and
    quantity, so each such set's body is rendered once as a template and filled in."""
    templates: dict[tuple[Any, ...], bytes | None] = {}
    bodies: list[bytes] = []
    for p in placed:
        order, line = p.order, p.line
        shared = (*(order.get(k) for k in _SHARED_ORDER), *(line[k] for k in _SHARED_LINE))
        own = (*(order[k] for k in _OWN_ORDER), *(line[k] for k in _OWN_LINE))
        if shared in templates:
            template = templates[shared]
            bodies.append(order_json(p) if template is None else template % own)
        else:
            body = order_json(p)
            template = _template(p)
            # (None when a shared text holds a mark's digits: those bodies are rendered whole)
            templates[shared] = template if template % own == body else None
            bodies.append(body)
    return bodies


def _template(placed: Placed) -> bytes:
    """``order_json`` of ``placed`` with its own fields as ``%d`` (in the order above)."""
    order, line = dict(placed.order), dict(placed.line)
    for i, key in enumerate(_OWN_ORDER):
        order[key] = _MARK - i
    for i, key in enumerate(_OWN_LINE, start=len(_OWN_ORDER)):
        line[key] = _MARK - i
    text = order_json(Placed(order, line)).replace(b"%", b"%%")
    for i in range(len(_OWN_ORDER) + len(_OWN_LINE)):
        text = text.replace(str(_MARK - i).encode(), b"%d", 1)
    return text
