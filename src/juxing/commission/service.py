"""Attribution and the commission's life in the ledger.

- ``attribute_order`` (OrderPlaced): last click wins within the window, which closes when
  the order is placed; a self-purchase is explained and earns nothing.
- ``accrue_order`` (OrderPaid): commission on the amount actually paid goes to the
  creator's pending account; fraud rules may hold it for review.
- ``start_return_window`` (OrderReceived): pending becomes available
  ``POLICY.return_window_days`` later (``mature_due``, a periodic job).
- ``claw_back_order`` (OrderRefunded): proportional reversal, also after confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from juxing import ledger
from juxing.commission import fraud, rules
from juxing.commission.links import featured_products
from juxing.commission.money import Split, kept_split, split
from juxing.commission.policy import POLICY
from juxing.kit.errors import Conflict, NotFound
from juxing.kit.time import utcnow
from juxing.ledger.service import (
    CREATOR_AVAILABLE,
    CREATOR_PENDING,
    MERCHANT_COMMISSION,
    PLATFORM_REVENUE,
)
from juxing.models.commission import (
    Click,
    Commission,
    CommissionReview,
    CommissionStatus,
    FraudFlag,
    TrackingLink,
)
from juxing.models.ledger import LedgerTransaction
from juxing.models.orders import Order, OrderLine

if TYPE_CHECKING:
    from juxing.deals.events import OrderPlaced

PAID_STATES = (CommissionStatus.PENDING, CommissionStatus.HELD, CommissionStatus.AVAILABLE)


def _load_order(session: Session, order_id: int) -> Order:
    # populate_existing: the deals service moves counters with Core UPDATEs, so objects
    # already in the session may be stale.
    order = session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise NotFound("No such order.")
    return order


def _clicked_before(with_visitor: bool) -> list[Any]:
    """Conditions on ``Click``: by the shopper (or the visitor cookie) between ``:opens``
    and ``:placed`` (the longest possible window before the order; ``_click_params``)."""
    who = Click.shopper_id == bindparam("shopper_id")
    if with_visitor:
        who = or_(who, Click.visitor_id == bindparam("visitor_id"))
    return [who, Click.clicked_at <= bindparam("placed"), Click.clicked_at >= bindparam("opens")]


def _click_params(shopper_id: int, visitor_id: str | None, placed: datetime) -> dict[str, Any]:
    return {
        "shopper_id": shopper_id,
        "visitor_id": visitor_id,
        "placed": placed,
        "opens": placed - timedelta(days=POLICY.max_window_days),
    }


def _clickers(with_visitors: bool, pg: bool) -> Any:
    """Who of ``:shoppers`` (or ``:visitors``) clicked between ``:opens`` and ``:placed``.
    On PostgreSQL each list is one array parameter (one statement text for any count)."""

    def one_of(column: Any, name: str) -> Any:
        if pg:
            return column == any_(bindparam(name, type_=ARRAY(column.type)))
        return column.in_(bindparam(name, expanding=True))

    who: Any = one_of(Click.shopper_id, "shoppers")
    if with_visitors:
        who = or_(who, one_of(Click.visitor_id, "visitors"))
    return (
        select(Click.shopper_id, Click.visitor_id)
        .where(who, Click.clicked_at <= bindparam("placed"), Click.clicked_at >= bindparam("opens"))
        .distinct()
    )


# Built once, keyed by (with visitors, PostgreSQL): the buy path asks for every order.
_CLICKERS = {(v, pg): _clickers(v, pg) for v in (False, True) for pg in (False, True)}
_CANDIDATE_CLICKS = {
    v: select(Click, TrackingLink)
    .join(TrackingLink, TrackingLink.id == Click.link_id)
    .where(*_clicked_before(v))
    .order_by(Click.clicked_at.desc(), Click.id.desc())
    for v in (False, True)
}


def orders_with_candidate_clicks(session: Session, placed: Sequence[OrderPlaced]) -> list[int]:
    """The orders among ``placed`` that some click could be attributed (by their shopper or
    visitor cookie, inside the longest window before the order): one indexed query for
    them all (most orders follow no click). A superset: ``attribute_order`` decides."""
    if not placed:
        return []
    earliest = min(e.placed_at for e in placed) - timedelta(days=POLICY.max_window_days)
    latest = max(e.placed_at for e in placed)
    shoppers = sorted({e.shopper_id for e in placed})
    visitors = sorted({e.visitor_id for e in placed if e.visitor_id})
    params: dict[str, Any] = {
        "shoppers": shoppers,
        "visitors": visitors,
        "opens": earliest,
        "placed": latest,
    }
    session.flush()  # (what the ORM's execute would do first; nothing on the buy path)
    conn = session.connection()  # a Core query: without the ORM's execution machinery
    rows = conn.execute(_CLICKERS[bool(visitors), conn.dialect.name == "postgresql"], params).all()
    hit_shoppers = {shopper for shopper, _visitor in rows}
    hit_visitors = {visitor for _shopper, visitor in rows if visitor}
    return [
        e.order_id
        for e in placed
        if e.shopper_id in hit_shoppers or (e.visitor_id and e.visitor_id in hit_visitors)
    ]


def _candidate_clicks(session: Session, order: Order) -> list[tuple[Click, TrackingLink]]:
    """Clicks by the order's shopper or visitor cookie before it was placed, newest first."""
    params = _click_params(order.shopper_id, order.visitor_id, order.created_at)
    rows = session.execute(_CANDIDATE_CLICKS[bool(order.visitor_id)], params).all()
    return [(c, link) for c, link in rows]


def _explain(
    click: Click, link: TrackingLink, decision: rules.RateDecision, bonus_bp: int, placed: datetime
) -> str:
    rule = f"{decision.scope.value}" + (f" #{decision.rule_id}" if decision.rule_id else "")
    age = placed - click.clicked_at
    return (
        f"last click #{click.id} on link {link.code} ({link.target_type} {link.target_id}) by "
        f"creator {click.creator_id} at {click.clicked_at.isoformat()}, "
        f"{age.days}d {age.seconds // 3600}h before the order, inside the "
        f"{decision.window_days}-day window; rate {decision.base_rate_bp}bp from the "
        f"{rule} rule + {bonus_bp}bp level bonus"
    )


def attribute_order(session: Session, *, order_id: int) -> list[Commission]:
    """Decide, for each line of a just-placed order, which creator's click (if any) sold it."""
    existing = list(session.scalars(select(Commission).where(Commission.order_id == order_id)))
    if existing:
        return existing
    order = _load_order(session, order_id)
    candidates = _candidate_clicks(session, order)
    if not candidates:
        return []
    featured: dict[int, set[int]] = {}
    made: list[Commission] = []
    for line in order.lines:
        decision = rules.resolve(
            session,
            merchant_id=order.merchant_id,
            product_id=line.product_id,
            deal_item_id=line.deal_item_id,
        )
        opens = order.created_at - timedelta(days=decision.window_days)
        chosen = None
        for click, link in candidates:
            if click.clicked_at < opens:
                break
            if link.product_id is not None:
                matches = link.product_id == line.product_id
            else:
                if link.id not in featured:
                    featured[link.id] = featured_products(
                        session, post_id=link.post_id, live_room_id=link.live_room_id
                    )
                matches = line.product_id in featured[link.id]
            if matches:
                chosen = (click, link)
                break
        if chosen is None:
            continue
        made.append(_new_commission(session, order, line, decision, *chosen))
    session.flush()
    return made


def _new_commission(
    session: Session,
    order: Order,
    line: OrderLine,
    decision: rules.RateDecision,
    click: Click,
    link: TrackingLink,
) -> Commission:
    self_purchase = click.creator_id == order.shopper_id
    bonus_bp = 0 if self_purchase else rules.level_bonus_bp(session, creator_id=click.creator_id)
    if self_purchase:
        status = CommissionStatus.NO_COMMISSION
        explanation = (
            f"self-purchase: creator {click.creator_id} bought through their own link "
            f"{link.code} (click #{click.id}); earns nothing"
        )
    elif decision.base_rate_bp == 0:
        status = CommissionStatus.NO_COMMISSION
        explanation = (
            f"click #{click.id} by creator {click.creator_id} within the window, but the "
            "merchant set no commission rate for this item"
        )
    else:
        status = CommissionStatus.PLACED
        explanation = _explain(click, link, decision, bonus_bp, order.created_at)
    commission = Commission(
        order_id=order.id,
        order_line_id=line.id,
        merchant_id=order.merchant_id,
        shopper_id=order.shopper_id,
        creator_id=click.creator_id,
        product_id=line.product_id,
        deal_item_id=line.deal_item_id,
        click_id=click.id,
        link_id=link.id,
        clicked_at=click.clicked_at,
        decision="self_purchase" if self_purchase else "attributed",
        status=status.value,
        window_days=decision.window_days,
        rule_scope=decision.scope.value,
        rule_id=decision.rule_id,
        base_rate_bp=0 if self_purchase else decision.base_rate_bp,
        bonus_bp=bonus_bp if decision.base_rate_bp else 0,
        fee_bp=POLICY.platform_fee_bp,
        currency=order.currency,
        amount_minor=line.amount_minor,
        explanation=explanation[:500],
        placed_at=order.created_at,
    )
    session.add(commission)
    return commission


def _split_of(c: Commission) -> Split:
    return Split(base=c.base_minor, bonus=c.bonus_minor, fee=c.fee_minor)


def _accounts(session: Session, c: Commission):
    cur = c.currency
    return (
        ledger.account(session, kind=MERCHANT_COMMISSION, owner_id=c.merchant_id, currency=cur),
        ledger.account(session, kind=PLATFORM_REVENUE, currency=cur),
        ledger.account(session, kind=CREATOR_PENDING, owner_id=c.creator_id, currency=cur),
        ledger.account(session, kind=CREATOR_AVAILABLE, owner_id=c.creator_id, currency=cur),
    )


def _post_split(
    session: Session,
    c: Commission,
    s: Split,
    *,
    sign: int,
    creator_kind: str,
    reference: str,
    kind: str,
    memo: str,
    at: datetime,
) -> LedgerTransaction | None:
    """Post ``s`` (sign=+1 accrue, -1 reverse) between merchant, platform and creator."""
    merchant, platform, pending, available = _accounts(session, c)
    creator = pending if creator_kind == CREATOR_PENDING else available
    return ledger.post(
        session,
        reference=reference,
        kind=kind,
        source="commission",
        source_id=c.id,
        legs=[
            ledger.Leg(merchant, -sign * s.base),
            ledger.Leg(platform, sign * s.platform),
            ledger.Leg(creator, sign * s.creator),
        ],
        memo=memo,
        at=at,
    )


def _transition(session: Session, c: Commission, frm: Iterable[str], **values: object) -> bool:
    """Conditional update: move ``c`` only if it is still in one of ``frm`` (no double posts)."""
    result = session.execute(
        update(Commission)
        .where(Commission.id == c.id, Commission.status.in_(list(frm)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(c)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def accrue_order(
    session: Session, *, order_id: int, at: datetime | None = None
) -> list[Commission]:
    """Post pending commission for a paid order's attributed lines; hold flagged ones."""
    now = at or utcnow()
    order = _load_order(session, order_id)
    commissions = attribute_order(session, order_id=order_id)
    lines = {line.id: line for line in order.lines}
    posted = []
    for c in commissions:
        if c.status != CommissionStatus.PLACED:
            continue
        line = lines[c.order_line_id]
        s = split(
            amount_minor=line.amount_minor,
            base_rate_bp=c.base_rate_bp,
            bonus_bp=c.bonus_bp,
            fee_bp=c.fee_bp,
        )
        if not _transition(
            session,
            c,
            [CommissionStatus.PLACED],
            status=CommissionStatus.PENDING.value,
            amount_minor=line.amount_minor,
            base_minor=s.base,
            bonus_minor=s.bonus,
            fee_minor=s.fee,
            paid_at=order.paid_at or now,
        ):
            continue
        _post_split(
            session,
            c,
            s,
            sign=1,
            creator_kind=CREATOR_PENDING,
            reference=f"commission:{c.id}:accrue",
            kind="commission_accrual",
            memo=f"order {c.order_id} line {c.order_line_id}: {c.base_rate_bp}+{c.bonus_bp}bp",
            at=now,
        )
        flags = fraud.evaluate(session, commission=c, at=now)
        if flags:
            hold(session, commission=c, flags=flags, at=now)
        posted.append(c)
    return posted


def hold(
    session: Session, *, commission: Commission, flags: list[fraud.Flag], at: datetime
) -> None:
    """Hold a commission for operator review (it cannot mature while held)."""
    for flag in flags:
        session.add(
            FraudFlag(
                commission_id=commission.id, rule=flag.rule, details=flag.details, created_at=at
            )
        )
    if _transition(
        session,
        commission,
        [CommissionStatus.PENDING],
        status=CommissionStatus.HELD.value,
    ):
        session.add(
            CommissionReview(
                commission_id=commission.id,
                action="hold",
                actor_id=None,
                reason="fraud rules: " + ", ".join(sorted({f.rule for f in flags})),
                created_at=at,
            )
        )
    session.flush()


def cancel_order(session: Session, *, order_id: int) -> int:
    """An unpaid order was cancelled: its attributed lines will never earn."""
    result = session.execute(
        update(Commission)
        .where(Commission.order_id == order_id, Commission.status == CommissionStatus.PLACED)
        .values(status=CommissionStatus.CANCELLED.value)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def start_return_window(session: Session, *, order_id: int, at: datetime | None = None) -> int:
    """The shopper confirmed receipt: commission becomes available after the return window."""
    order = session.get(Order, order_id)
    received = (order.received_at if order is not None else None) or at or utcnow()
    result = session.execute(
        update(Commission)
        .where(
            Commission.order_id == order_id,
            Commission.status.in_([s.value for s in PAID_STATES]),
            Commission.received_at.is_(None),
        )
        .values(
            received_at=received,
            available_at=received + timedelta(days=POLICY.return_window_days),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mature(session: Session, *, commission: Commission, at: datetime) -> bool:
    """Move one commission's remaining pending money to the creator's available balance."""
    if not _transition(
        session,
        commission,
        [CommissionStatus.PENDING],
        status=CommissionStatus.AVAILABLE.value,
        matured_at=at,
    ):
        return False
    remaining = kept_split(
        _split_of(commission),
        refunded_minor=commission.refunded_minor,
        amount_minor=commission.amount_minor,
    ).creator
    _, _, pending, available = _accounts(session, commission)
    ledger.post(
        session,
        reference=f"commission:{commission.id}:mature",
        kind="commission_available",
        source="commission",
        source_id=commission.id,
        legs=[ledger.Leg(pending, -remaining), ledger.Leg(available, remaining)],
        memo=f"order {commission.order_id} line {commission.order_line_id}: return window closed",
        at=at,
    )
    return True


def mature_due(session: Session, *, at: datetime | None = None, limit: int = 500) -> int:
    """Mature up to ``limit`` commissions whose return window has closed."""
    now = at or utcnow()
    due = session.scalars(
        select(Commission)
        .where(
            Commission.status == CommissionStatus.PENDING,
            Commission.available_at.is_not(None),
            Commission.available_at <= now,
        )
        .order_by(Commission.available_at, Commission.id)
        .limit(limit)
    ).all()
    return sum(1 for c in due if mature(session, commission=c, at=now))


def claw_back_order(session: Session, *, order_id: int, at: datetime | None = None) -> int:
    """Claw back commission in proportion to each line's refunded amount (cumulative)."""
    now = at or utcnow()
    order = _load_order(session, order_id)
    lines = {line.id: line for line in order.lines}
    commissions = session.scalars(
        select(Commission).where(Commission.order_id == order_id).order_by(Commission.id)
    ).all()
    n = 0
    for c in commissions:
        line = lines.get(c.order_line_id)
        if line is None or line.refunded_minor <= c.refunded_minor:
            continue
        if c.status not in (*PAID_STATES, CommissionStatus.VOIDED):
            # Not paid (or earns nothing): just remember what was refunded.
            c.refunded_minor = line.refunded_minor
            continue
        n += 1 if _claw_back(session, c, new_refunded=line.refunded_minor, at=now) else 0
    if n:
        fraud.after_refund(session, order=order, at=now)
    session.flush()
    return n


def _claw_back(session: Session, c: Commission, *, new_refunded: int, at: datetime) -> bool:
    old = c.refunded_minor
    result = session.execute(
        update(Commission)
        .where(Commission.id == c.id, Commission.refunded_minor == old)
        .values(refunded_minor=new_refunded)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    session.refresh(c)
    if c.status == CommissionStatus.VOIDED:
        return True  # everything was reversed already
    s = _split_of(c)
    before = kept_split(s, refunded_minor=old, amount_minor=c.amount_minor)
    after = kept_split(s, refunded_minor=new_refunded, amount_minor=c.amount_minor)
    delta = Split(
        base=before.base - after.base, bonus=before.bonus - after.bonus, fee=before.fee - after.fee
    )
    creator_kind = CREATOR_AVAILABLE if c.matured_at is not None else CREATOR_PENDING
    _post_split(
        session,
        c,
        delta,
        sign=-1,
        creator_kind=creator_kind,
        reference=f"commission:{c.id}:clawback:{new_refunded}",
        kind="commission_clawback",
        memo=f"order {c.order_id} line {c.order_line_id}: refunded {new_refunded} of "
        f"{c.amount_minor}",
        at=at,
    )
    return True


def release(session: Session, *, commission_id: int, operator_id: int, reason: str) -> Commission:
    """An operator clears a held commission: it matures as normal (audited)."""
    c = _get(session, commission_id)
    if not _transition(session, c, [CommissionStatus.HELD], status=CommissionStatus.PENDING.value):
        raise Conflict("Only a held commission can be released.", code="not_held")
    session.add(
        CommissionReview(
            commission_id=c.id,
            action="release",
            actor_id=operator_id,
            reason=reason,
            created_at=utcnow(),
        )
    )
    session.flush()
    return c


def void(session: Session, *, commission_id: int, operator_id: int, reason: str) -> Commission:
    """An operator voids a held commission: what remains of it is reversed (audited)."""
    c = _get(session, commission_id)
    now = utcnow()
    if not _transition(
        session, c, [CommissionStatus.HELD], status=CommissionStatus.VOIDED.value, voided_at=now
    ):
        raise Conflict("Only a held commission can be voided.", code="not_held")
    remaining = kept_split(
        _split_of(c), refunded_minor=c.refunded_minor, amount_minor=c.amount_minor
    )
    txn = _post_split(
        session,
        c,
        remaining,
        sign=-1,
        creator_kind=CREATOR_PENDING,
        reference=f"commission:{c.id}:void",
        kind="commission_void",
        memo=f"voided by operator {operator_id}: {reason}",
        at=now,
    )
    session.add(
        CommissionReview(
            commission_id=c.id,
            action="void",
            actor_id=operator_id,
            reason=reason,
            ledger_transaction_id=txn.id if txn is not None else None,
            created_at=now,
        )
    )
    session.flush()
    return c


def _get(session: Session, commission_id: int) -> Commission:
    c = session.get(Commission, commission_id)
    if c is None:
        raise NotFound("No such commission.")
    return c


def explain_order(session: Session, *, order_id: int) -> tuple[Order, dict[int, Commission]]:
    """An order with its commission decisions keyed by order line id."""
    order = _load_order(session, order_id)
    found = session.scalars(select(Commission).where(Commission.order_id == order_id))
    return order, {c.order_line_id: c for c in found}
