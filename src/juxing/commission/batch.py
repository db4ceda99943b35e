"""The batch path: attribute and post commission for many paid orders at once, in SQL.

For backfills, replays after an outage and the ledger benchmark. Each chunk of orders is a
handful of set-based statements in one transaction (no per-row Python):

1. ``INSERT INTO commissions ... SELECT``: for every line of a paid, not yet attributed
   order, the rate by precedence (deal item → product → campaign → merchant, joins and
   CASE), the window (campaign → merchant → policy), and the last eligible click by the
   same shopper *or* the same visitor cookie, on a link to the product or to a post / live
   room featuring it, inside the window before placement
   (``ROW_NUMBER() OVER (PARTITION BY line ORDER BY clicked_at DESC, id DESC)``);
   creator-level bonus from the creator's profile; self-purchase earns nothing.
2. ``INSERT INTO ledger_accounts ... SELECT`` for accounts not seen before.
3. ``INSERT INTO ledger_transactions ... SELECT`` (reference ``commission:<id>:accrue``,
   exactly as the per-request path).
4. three ``INSERT INTO ledger_entries ... SELECT`` (merchant, platform, creator pending).
5. one aggregated ``UPDATE ledger_accounts`` for the balances the chunk moved.

Idempotent: orders that already have a commission are skipped, so a re-run posts nothing.
On PostgreSQL a chunk locks ``ledger_accounts`` against concurrent postings (SHARE ROW
EXCLUSIVE) for its few seconds, so its watermarks see only its own entries; SQLite has one
writer anyway. Fraud rules are not evaluated here (they look at live click patterns: run
``fraud`` per request); see docs/commission.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from juxing.commission.policy import POLICY
from juxing.kit.time import utcnow
from juxing.ledger.service import (
    CREATOR_AVAILABLE,
    CREATOR_PENDING,
    MERCHANT_COMMISSION,
    PLATFORM_REVENUE,
)
from juxing.models.base import UTCDateTime
from juxing.models.commission import Click, Commission, CommissionStatus, CreatorLevelBonus
from juxing.models.commission import CommissionRule as Rule
from juxing.models.content import CreatorProfile, LiveRoomItem, PostProductCard
from juxing.models.deals import DealItem
from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from juxing.models.orders import Order, OrderLine

DEFAULT_CHUNK = 50_000


def _t(model: Any) -> Table:
    table: Table = model.__table__
    return table


class _days_before(FunctionElement[Any]):
    """``ts - days`` (days a SQL integer expression), exact to the microsecond."""

    type = DateTime()
    inherit_cache = True


@compiles(_days_before, "sqlite")
def _days_before_sqlite(element: _days_before, compiler: SQLCompiler, **kw: Any) -> str:
    ts, days = (compiler.process(c, **kw) for c in element.clauses)
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': shift the date part, keep the microseconds.
    return f"(strftime('%Y-%m-%d %H:%M:%S', {ts}, '-' || ({days}) || ' days') || substr({ts}, 20))"


@compiles(_days_before, "postgresql")
def _days_before_pg(element: _days_before, compiler: SQLCompiler, **kw: Any) -> str:
    ts, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"({ts} - make_interval(secs => ({days}) * 86400))"


def _idiv(a: Any, b: Any) -> ColumnElement[int]:
    """Integer division that rounds down (operands are non-negative integers)."""
    return type_coerce(a, BigInteger).op("/")(type_coerce(b, BigInteger))


def _text(x: Any) -> ColumnElement[str]:
    return cast(x, String)


def _code(kind: str, owner: Any, currency: Any) -> ColumnElement[str]:
    """The account code ``kind:owner:currency`` (as ``ledger.account_code``) in SQL."""
    who = literal("-") if owner is None else _text(owner)
    return literal(kind + ":") + who + literal(":") + currency


@dataclass
class BatchResult:
    orders: int = 0
    lines: int = 0
    attributed: int = 0
    transactions: int = 0


def _rowcount(session: Session, stmt: Any) -> int:
    res = session.connection().execute(stmt, execution_options={"preserve_rowcount": True})
    return int(res.rowcount)


def _max_id(session: Session, table: Table) -> int:
    return int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0)


def _scope(col: Any, order_ids: Sequence[int] | None, id_range: tuple[int, int] | None) -> Any:
    if id_range is not None:
        return col.between(*id_range)
    return col.in_(list(order_ids or []))


def _also_in(col: Any, id_range: tuple[int, int] | None) -> Any:
    """``col`` in the id range too (a second index range for the planner); true for a list
    of ids, which is not repeated."""
    return col.between(*id_range) if id_range is not None else true()


def _unattributed(id_range: tuple[int, int] | None) -> Any:
    """The order has no commission yet. With an id range the commissions probed are bounded
    by it too, so PostgreSQL reads only that slice of the index (not every commission) and
    estimates the chunk's size from it."""
    o, cm = _t(Order), _t(Commission)
    return ~exists().where(cm.c.order_id == o.c.id, _also_in(cm.c.order_id, id_range))


def _level_bonus(level: Any) -> ColumnElement[int]:
    whens = [(level == lv, bp) for lv, bp in sorted(POLICY.level_bonus_bp.items()) if bp]
    return case(*whens, else_=0) if whens else literal(0)


def _attribution(order_ids: Sequence[int] | None, id_range: tuple[int, int] | None) -> Any:
    """The SELECT that yields one commission row per attributed line of paid orders."""
    o, ol, d, k = _t(Order), _t(OrderLine), _t(DealItem), _t(Click)
    pr, cr, mr = _t(Rule).alias("pr"), _t(Rule).alias("cr"), _t(Rule).alias("mr")
    window = func.coalesce(cr.c.window_days, mr.c.window_days, POLICY.default_window_days)
    has_deal = d.c.commission_rate_bp.is_not(None)
    tiers = [
        (pr.c.rate_bp.is_not(None), "product", pr.c.id, pr.c.rate_bp),
        (cr.c.rate_bp.is_not(None), "campaign", cr.c.id, cr.c.rate_bp),
        (mr.c.rate_bp.is_not(None), "merchant", mr.c.id, mr.c.rate_bp),
    ]
    scope_name = case(
        (has_deal, "deal_item"), *[(w, name) for w, name, _, _ in tiers], else_="none"
    )
    rule_id = case((has_deal, d.c.id), *[(w, rid) for w, _, rid, _ in tiers], else_=null())
    rate = case((has_deal, d.c.commission_rate_bp), *[(w, r) for w, _, _, r in tiers], else_=0)
    same_merchant = pr.c.merchant_id == o.c.merchant_id
    lines = (
        select(
            ol.c.id.label("line_id"),
            ol.c.order_id,
            ol.c.product_id,
            ol.c.deal_item_id,
            ol.c.amount_minor,
            o.c.shopper_id,
            o.c.visitor_id,
            o.c.merchant_id,
            o.c.currency,
            o.c.created_at.label("placed_at"),
            o.c.paid_at,
            window.label("window_days"),
            scope_name.label("rule_scope"),
            rule_id.label("rule_id"),
            rate.label("rate_bp"),
        )
        .select_from(
            ol.join(o, o.c.id == ol.c.order_id)
            .outerjoin(d, d.c.id == ol.c.deal_item_id)
            .outerjoin(
                pr,
                and_(same_merchant, pr.c.scope == "product", pr.c.target_id == ol.c.product_id),
            )
            .outerjoin(
                cr,
                and_(
                    cr.c.merchant_id == o.c.merchant_id,
                    cr.c.scope == "campaign",
                    cr.c.target_id == d.c.campaign_id,
                ),
            )
            .outerjoin(
                mr,
                and_(
                    mr.c.merchant_id == o.c.merchant_id,
                    mr.c.scope == "merchant",
                    mr.c.target_id == 0,
                ),
            )
        )
        .where(
            _scope(o.c.id, order_ids, id_range),
            _also_in(ol.c.order_id, id_range),
            o.c.paid_at.is_not(None),
            _unattributed(id_range),
        )
        .cte("batch_lines")
    )
    ppc, lri = _t(PostProductCard), _t(LiveRoomItem)
    matches = or_(
        k.c.product_id == lines.c.product_id,
        and_(
            k.c.product_id.is_(None),
            k.c.post_id.is_not(None),
            exists().where(ppc.c.post_id == k.c.post_id, ppc.c.product_id == lines.c.product_id),
        ),
        and_(
            k.c.product_id.is_(None),
            k.c.post_id.is_(None),
            exists().where(
                lri.c.room_id == k.c.live_room_id, lri.c.product_id == lines.c.product_id
            ),
        ),
    )
    in_window = and_(
        k.c.clicked_at <= lines.c.placed_at,
        k.c.clicked_at >= _days_before(lines.c.placed_at, lines.c.window_days),
        matches,
    )

    def candidates(who: Any) -> Any:
        return select(
            lines.c.line_id,
            k.c.id.label("click_id"),
            k.c.link_id,
            k.c.creator_id,
            k.c.clicked_at,
        ).select_from(lines.join(k, and_(who, in_window)))

    both = union_all(
        candidates(k.c.shopper_id == lines.c.shopper_id),
        candidates(and_(lines.c.visitor_id.is_not(None), k.c.visitor_id == lines.c.visitor_id)),
    ).subquery("batch_candidates")
    ranked = select(
        both,
        func.row_number()
        .over(
            partition_by=both.c.line_id, order_by=(both.c.clicked_at.desc(), both.c.click_id.desc())
        )
        .label("rn"),
    ).subquery("batch_ranked")
    cp, lb = _t(CreatorProfile), _t(CreatorLevelBonus)
    level = func.coalesce(cp.c.level, 1)
    own = ranked.c.creator_id == lines.c.shopper_id
    no_rate = lines.c.rate_bp == 0
    base_rate = case((own, 0), else_=lines.c.rate_bp)
    bonus_bp = case((or_(own, no_rate), 0), else_=func.coalesce(lb.c.bonus_bp, _level_bonus(level)))
    base = _idiv(lines.c.amount_minor * base_rate, 10_000)
    bonus = case((base > 0, _idiv(lines.c.amount_minor * bonus_bp, 10_000)), else_=0)
    fee_bp = POLICY.platform_fee_bp
    fee = _idiv(base * fee_bp, 10_000)
    earns = and_(~own, ~no_rate)
    explanation = case(
        (
            own,
            literal("batch: self-purchase: creator ")
            + _text(ranked.c.creator_id)
            + literal(" bought through their own link (click #")
            + _text(ranked.c.click_id)
            + literal("); earns nothing"),
        ),
        else_=literal("batch: last click #")
        + _text(ranked.c.click_id)
        + literal(" by creator ")
        + _text(ranked.c.creator_id)
        + literal(" inside the ")
        + _text(lines.c.window_days)
        + literal("-day window; rate ")
        + _text(lines.c.rate_bp)
        + literal("bp from the ")
        + lines.c.rule_scope
        + literal(" rule + ")
        + _text(bonus_bp)
        + literal("bp level bonus"),
    )
    columns = {
        "order_id": lines.c.order_id,
        "order_line_id": lines.c.line_id,
        "merchant_id": lines.c.merchant_id,
        "shopper_id": lines.c.shopper_id,
        "creator_id": ranked.c.creator_id,
        "product_id": lines.c.product_id,
        "deal_item_id": lines.c.deal_item_id,
        "click_id": ranked.c.click_id,
        "link_id": ranked.c.link_id,
        "clicked_at": ranked.c.clicked_at,
        "decision": case((own, "self_purchase"), else_="attributed"),
        "status": case(
            (earns, CommissionStatus.PENDING.value), else_=CommissionStatus.NO_COMMISSION.value
        ),
        "window_days": lines.c.window_days,
        "rule_scope": lines.c.rule_scope,
        "rule_id": lines.c.rule_id,
        "base_rate_bp": base_rate,
        "bonus_bp": bonus_bp,
        "fee_bp": literal(fee_bp),
        "currency": lines.c.currency,
        "amount_minor": lines.c.amount_minor,
        "base_minor": base,
        "bonus_minor": bonus,
        "fee_minor": fee,
        "refunded_minor": literal(0),
        "explanation": explanation,
        "placed_at": lines.c.placed_at,
        "paid_at": case((earns, lines.c.paid_at), else_=null()),
    }
    query = (
        select(*[c.label(n) for n, c in columns.items()])
        .select_from(
            ranked.join(lines, lines.c.line_id == ranked.c.line_id)
            .outerjoin(cp, cp.c.user_id == ranked.c.creator_id)
            .outerjoin(lb, lb.c.level == level)
        )
        .where(ranked.c.rn == 1)
    )
    return list(columns), query


def attribute_and_post(
    session: Session,
    *,
    order_ids: Sequence[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> BatchResult:
    """Attribute and accrue the paid orders ``order_ids`` (or ids in ``id_range``,
    inclusive) that have no commission yet; a handful of statements for the whole set."""
    result = BatchResult()
    o, ol, cm = _t(Order), _t(OrderLine), _t(Commission)
    acc, txn, ent = _t(LedgerAccount), _t(LedgerTransaction), _t(LedgerEntry)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # no concurrent posting while this chunk's watermarks are in use
        session.execute(text("LOCK TABLE ledger_accounts IN SHARE ROW EXCLUSIVE MODE"))
        # The chunk's statements run for a second or two: compiling them costs more than
        # it saves (0.15-0.25 s each at 50,000 orders).
        session.execute(text("SET LOCAL jit = off"))
    now = utcnow()
    pending = (
        select(o.c.id)
        .where(
            _scope(o.c.id, order_ids, id_range),
            o.c.paid_at.is_not(None),
            _unattributed(id_range),
        )
        .subquery()
    )
    result.orders, result.lines = session.execute(
        select(func.count(func.distinct(ol.c.order_id)), func.count()).where(
            _also_in(ol.c.order_id, id_range), ol.c.order_id.in_(select(pending.c.id))
        )
    ).one()
    if not result.lines:
        return result
    c_mark, t_mark, e_mark = _max_id(session, cm), _max_id(session, txn), _max_id(session, ent)

    # 1. Commissions (attribution, rate, split) for every line at once.
    names, query = _attribution(order_ids, id_range)
    session.execute(insert(cm).from_select(names, query))
    # (sqlite3 reports no rowcount for WITH ... INSERT: count what the chunk added.)
    result.attributed = int(
        session.scalar(
            select(func.count()).where(cm.c.id > c_mark, _scope(cm.c.order_id, order_ids, id_range))
        )
        or 0
    )
    if not result.attributed:
        return result
    mine = and_(
        cm.c.id > c_mark,
        _scope(cm.c.order_id, order_ids, id_range),
        cm.c.status == CommissionStatus.PENDING.value,
        cm.c.base_minor > 0,
    )

    # Planner statistics for the rows just written (same transaction), while they are a
    # large share of the table; later chunks are planned well from the existing ones.
    if postgres and result.attributed * 5 > c_mark:
        session.execute(text("ANALYZE commissions"))
    # 2. Accounts first seen in this chunk (the per-request path opens all four).
    wanted = union_all(
        *[
            select(
                _code(kind, owner, cm.c.currency).label("code"),
                literal(kind).label("kind"),
                (owner if owner is not None else null()).label("owner_id"),
                cm.c.currency.label("currency"),
            ).where(mine)
            for kind, owner in (
                (MERCHANT_COMMISSION, cm.c.merchant_id),
                (PLATFORM_REVENUE, None),
                (CREATOR_PENDING, cm.c.creator_id),
                (CREATOR_AVAILABLE, cm.c.creator_id),
            )
        ]
    ).subquery("batch_accounts")
    new_accounts = (
        select(
            wanted.c.code,
            wanted.c.kind,
            type_coerce(wanted.c.owner_id, BigInteger),
            wanted.c.currency,
            literal(0),
            literal(now, UTCDateTime()),
        )
        .where(~exists().where(acc.c.code == wanted.c.code))
        .distinct()
    )
    session.execute(
        insert(acc).from_select(
            ["code", "kind", "owner_id", "currency", "balance_minor", "created_at"], new_accounts
        )
    )

    # 3. One accrual transaction per commission that earns something.
    memo = (
        literal("order ")
        + _text(cm.c.order_id)
        + literal(" line ")
        + _text(cm.c.order_line_id)
        + literal(": ")
        + _text(cm.c.base_rate_bp)
        + literal("+")
        + _text(cm.c.bonus_bp)
        + literal("bp (batch)")
    )
    result.transactions = _rowcount(
        session,
        insert(txn).from_select(
            ["reference", "kind", "source", "source_id", "memo", "created_at"],
            select(
                literal("commission:") + _text(cm.c.id) + literal(":accrue"),
                literal("commission_accrual"),
                literal("commission"),
                cm.c.id,
                memo,
                literal(now, UTCDateTime()),
            ).where(mine),
        ),
    )

    fresh_ledger = postgres and result.transactions * 5 > t_mark  # as for commissions above
    if fresh_ledger:
        session.execute(text("ANALYZE ledger_transactions, ledger_accounts"))

    # 4. Its entries, leg by leg (zero legs are not written, as in ``ledger.post``).
    def account_is(kind: str, owner: Any) -> Any:
        who = acc.c.owner_id.is_(None) if owner is None else acc.c.owner_id == owner
        return and_(acc.c.kind == kind, who, acc.c.currency == cm.c.currency)

    legs = (
        (account_is(MERCHANT_COMMISSION, cm.c.merchant_id), -cm.c.base_minor),
        (account_is(PLATFORM_REVENUE, None), cm.c.fee_minor - cm.c.bonus_minor),
        (
            account_is(CREATOR_PENDING, cm.c.creator_id),
            cm.c.base_minor - cm.c.fee_minor + cm.c.bonus_minor,
        ),
    )
    for on_account, amount in legs:
        session.execute(
            insert(ent).from_select(
                ["transaction_id", "account_id", "amount_minor", "currency", "created_at"],
                select(txn.c.id, acc.c.id, amount, cm.c.currency, literal(now, UTCDateTime()))
                .select_from(txn.join(cm, cm.c.id == txn.c.source_id).join(acc, on_account))
                .where(
                    txn.c.id > t_mark,
                    cm.c.id > c_mark,  # this chunk's commissions only (a range, not a scan)
                    txn.c.source == "commission",
                    txn.c.kind == "commission_accrual",
                    amount != 0,
                )
                .order_by(txn.c.id),
            )
        )

    # 5. Balances: one aggregated update over the accounts this chunk touched.
    e2 = ent.alias("e2")
    moved = (
        select(func.coalesce(func.sum(e2.c.amount_minor), 0))
        .where(e2.c.account_id == acc.c.id, e2.c.id > e_mark)
        .scalar_subquery()
    )
    session.execute(
        update(acc)
        .where(acc.c.id.in_(select(ent.c.account_id).where(ent.c.id > e_mark).distinct()))
        .values(balance_minor=acc.c.balance_minor + moved)
        .execution_options(synchronize_session=False)
    )
    if fresh_ledger:  # for the next chunk's plans and for reconciliation's sums
        session.execute(text("ANALYZE ledger_entries"))
    return result


def ranges(session: Session, *, chunk: int = DEFAULT_CHUNK) -> list[tuple[int, int]]:
    """Order-id ranges of at most ``chunk`` ids covering every paid order."""
    lo, hi = session.execute(
        select(func.min(Order.id), func.max(Order.id)).where(Order.paid_at.is_not(None))
    ).one()
    if lo is None:
        return []
    return [(a, min(a + chunk - 1, hi)) for a in range(lo, hi + 1, chunk)]


def run(db: Any, *, chunk: int = DEFAULT_CHUNK) -> BatchResult:
    """Every paid order not yet attributed, one transaction per chunk of order ids."""
    total = BatchResult()
    with db.session(write=False) as session:
        spans = ranges(session, chunk=chunk)
    for span in spans:
        with db.session() as session:
            r = attribute_and_post(session, id_range=span)
        total.orders += r.orders
        total.lines += r.lines
        total.attributed += r.attributed
        total.transactions += r.transactions
    return total
