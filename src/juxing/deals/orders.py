"""Buying: reserve (stock held, price locked) -> pending payment -> paid -> shipped ->
received; cancel and timeout release; full and partial refunds; group deals (拼团).

Every stock movement goes through a ``StockBackend`` (``deals.stock``); every state change of
an order is a conditional UPDATE on its status, so a retry, a duplicate callback or a second
worker cannot apply it twice.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from sqlalchemy import Table, bindparam, exists, func, insert, inspect, select, update
from sqlalchemy.orm import Session, selectinload

from juxing.catalog import service as catalog
from juxing.deals import coupons
from juxing.deals.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderReceived,
    OrderRefunded,
)
from juxing.deals.payments import PaymentProvider
from juxing.deals.service import BUYABLE_CAMPAIGN
from juxing.deals.stock import (
    ItemRef,
    StockBackend,
    backend_for,
    over_limit,
    rowcount,
    sold_out,
)
from juxing.kit.auth import ensure_owner
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.signals import publish
from juxing.kit.time import utcnow
from juxing.models.accounts import User
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.content import LiveRoom, LiveRoomItem, LiveRoomStatus
from juxing.models.deals import Campaign, CouponClaim, DealItem, GroupBuy
from juxing.models.orders import Order, OrderLine, OrderStatus, Payment, Refund, RefundLine

O = OrderStatus  # noqa: E741
REFUNDABLE = (O.PAID.value, O.SHIPPED.value, O.RECEIVED.value)


@dataclass
class Buying:
    """What buying needs from its surroundings."""

    redis_client: redis.Redis | None
    order_timeout_s: int = 900


def _item_ref(item: DealItem) -> ItemRef:
    return ItemRef(id=item.id, deal_stock=item.deal_stock, per_user_limit=item.per_user_limit)


def _not_live(item: DealItem, campaign_status: str, now: datetime) -> Unprocessable | None:
    if campaign_status not in BUYABLE_CAMPAIGN:
        return Unprocessable(
            "This deal is not on sale.",
            code="deal_not_on_sale",
            details={"field": "body.deal_item_id"},
        )
    if now < item.starts_at:
        return Unprocessable(
            "This deal has not started yet.",
            code="deal_not_started",
            details={"starts_at": item.starts_at.isoformat()},
        )
    if now >= item.ends_at:
        return Unprocessable(
            "This deal has ended.", code="deal_ended", details={"ends_at": item.ends_at.isoformat()}
        )
    return None


# The deal item with everything reserve checks, in one query (the hot path of a flash sale):
# campaign status, the line title, and whether a live room sells it as live-only.
_RESERVE_LOOKUP = (
    select(
        DealItem,
        Campaign.status,
        Product.title,
        Sku.name,
        exists()
        .where(LiveRoomItem.deal_item_id == DealItem.id, LiveRoomItem.live_only.is_(True))
        .label("live_only"),
    )
    .join(Campaign, Campaign.id == DealItem.campaign_id)
    .join(Product, Product.id == DealItem.product_id)
    .join(Sku, Sku.id == DealItem.sku_id)
    .where(DealItem.id == bindparam("deal_item_id"))
)


def _check_live_room(session: Session, *, deal_item_id: int, live_room_id: int | None) -> None:
    """A live-only deal item (直播专享) is sold only from a live room that is on air and shows it
    as live-only; elsewhere it is refused with ``live_only``."""
    if live_room_id is not None:
        on_air = session.execute(
            select(LiveRoomItem.id)
            .join(LiveRoom, LiveRoom.id == LiveRoomItem.room_id)
            .where(
                LiveRoomItem.room_id == live_room_id,
                LiveRoomItem.deal_item_id == deal_item_id,
                LiveRoomItem.live_only.is_(True),
                LiveRoom.status == LiveRoomStatus.LIVE.value,
            )
            .limit(1)
        ).first()
        if on_air is not None:
            return
    raise live_only_refused()


def live_only_refused() -> Unprocessable:
    return Unprocessable(
        "This deal is sold only in its live room while it is on air.",
        code="live_only",
        details={"field": "body.live_room_id"},
    )


def group_required() -> Unprocessable:
    return Unprocessable(
        "This is a group deal: start a group or join one.",
        code="group_required",
        details={"field": "body.group_code"},
    )


def no_such_item() -> NotFound:
    return NotFound("No such deal item.", details={"field": "body.deal_item_id"})


def reserve(
    *,
    session: Session,
    ctx: Buying,
    shopper: User,
    deal_item_id: int,
    quantity: int = 1,
    coupon_claim_id: int | None = None,
    start_group: bool = False,
    group_code: str | None = None,
    live_room_id: int | None = None,
    visitor_id: str | None = None,
    now: datetime | None = None,
    take_at_commit: bool = False,
) -> Order:
    """Hold stock and lock the deal price: an order pending payment (until it times out).

    ``take_at_commit`` (the HTTP buy path): on the SQL backend the guarded UPDATE of the deal's
    counters runs inside the commit, just before COMMIT, and a sold-out refusal is raised
    from the commit; the per-user limit is still checked at once."""
    now = now or utcnow()
    row = session.execute(_RESERVE_LOOKUP, {"deal_item_id": deal_item_id}).first()
    if row is None:
        raise no_such_item()
    item, campaign_status, title, sku_name, live_only = row
    problem = _not_live(item, campaign_status, now)
    if problem:
        raise problem
    if live_only:
        _check_live_room(session, deal_item_id=deal_item_id, live_room_id=live_room_id)
    if quantity > item.per_user_limit:
        raise over_limit(item.per_user_limit)
    if item.group_size and not (start_group or group_code):
        raise group_required()
    if not item.group_size and (start_group or group_code):
        raise Unprocessable(
            "This deal is not a group deal.",
            code="not_a_group_deal",
            details={"field": "body.group_code"},
        )
    backend = backend_for(item.stock_backend, ctx.redis_client)
    token = uuid.uuid4().hex if backend.name == "redis" else ""
    if token:
        # Redis first: one Lua call holds the stock and the shopper's counter (undone if this
        # transaction rolls back), so a sold-out attempt costs no SQL write.
        backend.take(
            session, item=_item_ref(item), shopper_id=shopper.id, quantity=quantity, token=token
        )
    elif item.available < quantity:
        # Sold out at the moment of the lookup: refuse without writing. The guarded UPDATE
        # below stays the real guard.
        raise sold_out()
    subtotal = item.deal_price_minor * quantity
    expires_at = now + timedelta(seconds=ctx.order_timeout_s)
    line = OrderLine(
        sku_id=item.sku_id,
        deal_item_id=item.id,
        product_id=item.product_id,
        title=f"{title} · {sku_name}"[:200],
        quantity=quantity,
        unit_price_minor=item.deal_price_minor,
        amount_minor=subtotal,
        refunded_minor=0,
        refunded_quantity=0,
        restocked_quantity=0,
    )
    order = Order(
        shopper_id=shopper.id,
        merchant_id=item.merchant_id,
        status=O.PENDING_PAYMENT.value,
        currency=item.currency,
        subtotal_minor=subtotal,
        discount_minor=0,
        total_minor=subtotal,
        refunded_minor=0,
        visitor_id=visitor_id,
        reservation_token=token or None,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
        lines=[line],
    )
    if item.group_size:
        group = _join_group(
            session, item=item, shopper=shopper, start=start_group, code=group_code, now=now
        )
        order.group_id = group.id
        order.expires_at = min(expires_at, group.expires_at)
    if coupon_claim_id is not None:
        claim, discount = coupons.apply_coupon(
            session=session,
            shopper_id=shopper.id,
            claim_id=coupon_claim_id,
            merchant_id=item.merchant_id,
            subtotal_minor=subtotal,
            currency=item.currency,
            now=now,
        )
        order.coupon_claim_id = claim.id
        order.discount_minor = discount
        order.total_minor = subtotal - discount
        line.amount_minor = order.total_minor
    _insert_order(session, order, line)
    if order.coupon_claim_id is not None:
        session.execute(
            update(CouponClaim)
            .where(CouponClaim.id == order.coupon_claim_id)
            .values(order_id=order.id)
            .execution_options(synchronize_session=False)
        )
    publish(
        session,
        OrderPlaced(order_id=order.id, shopper_id=shopper.id, visitor_id=visitor_id, placed_at=now),
    )
    if not token:
        # Last: the hot deal row stays locked as briefly as possible (not while subscribers
        # of OrderPlaced run). A refusal rolls everything back.
        backend.take(
            session,
            item=_item_ref(item),
            shopper_id=shopper.id,
            quantity=quantity,
            token="",
            at_commit=take_at_commit,
        )
    return order


_ORDERS, _LINES = cast(Table, Order.__table__), cast(Table, OrderLine.__table__)
# Built once: the columns come from each call's parameters (compiled once per column set).
_INSERT_ORDER = insert(_ORDERS).returning(_ORDERS.c.id)
_INSERT_LINE = insert(_LINES).returning(_LINES.c.id)


def _insert_order(session: Session, order: Order, line: OrderLine) -> None:
    """Write a new order and its line with two Core INSERTs (the hot buy path: no unit of
    work). ``order`` and ``line`` stay transient, with their ids filled in; read the order
    back through the session where it must be persistent."""
    values = {k: v for k, v in inspect(order).dict.items() if k in _ORDERS.c and k != "id"}
    order.id = session.execute(_INSERT_ORDER, values).scalar_one()
    line.order_id = order.id
    values = {k: v for k, v in inspect(line).dict.items() if k in _LINES.c and k != "id"}
    line.id = session.execute(_INSERT_LINE, values).scalar_one()


# --- group deals (拼团) ---------------------------------------------------------------------


def _join_group(
    session: Session,
    *,
    item: DealItem,
    shopper: User,
    start: bool,
    code: str | None,
    now: datetime,
) -> GroupBuy:
    if start:
        group = GroupBuy(
            deal_item_id=item.id,
            leader_id=shopper.id,
            code=secrets.token_urlsafe(9),
            size=item.group_size,
            member_count=1,
            paid_count=0,
            status="open",
            expires_at=now + timedelta(seconds=item.group_window_s or 3600),
            created_at=now,
        )
        session.add(group)
        session.flush()
        return group
    found = session.scalar(select(GroupBuy).where(GroupBuy.code == code))
    if found is None or found.deal_item_id != item.id:
        raise NotFound("No such group.", details={"field": "body.group_code"})
    group = found
    already = session.scalar(
        select(func.count())
        .select_from(Order)
        .where(
            Order.group_id == group.id,
            Order.shopper_id == shopper.id,
            Order.status != O.CANCELLED.value,
        )
    )
    if already:
        raise Conflict("You are already in this group.", code="group_already_joined")
    joined = session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group.id,
            GroupBuy.status == "open",
            GroupBuy.member_count < GroupBuy.size,
            GroupBuy.expires_at > now,
        )
        .values(member_count=GroupBuy.member_count + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(joined) != 1:
        raise Conflict(
            "This group is full or closed.", code="group_closed", details={"status": group.status}
        )
    return group


def get_group(*, session: Session, code: str) -> tuple[GroupBuy, list[Order]]:
    """A group by its share code, with its members' orders."""
    group = session.scalar(select(GroupBuy).where(GroupBuy.code == code))
    if group is None:
        raise NotFound("No such group.")
    orders = session.scalars(
        select(Order).where(Order.group_id == group.id).order_by(Order.id)
    ).all()
    return group, list(orders)


def expire_groups(
    *, session: Session, ctx: Buying, provider: PaymentProvider, now: datetime | None = None
) -> int:
    """Sweep: groups that did not fill in time expire; every member is refunded (stock
    returns) and unpaid members' orders are cancelled."""
    now = now or utcnow()
    ids = session.scalars(
        select(GroupBuy.id).where(GroupBuy.status == "open", GroupBuy.expires_at <= now).limit(100)
    ).all()
    expired = 0
    for group_id in ids:
        done = session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_id, GroupBuy.status == "open")
            .values(status="expired")
            .execution_options(synchronize_session=False)
        )
        if rowcount(done) != 1:
            continue
        expired += 1
        for order in session.scalars(select(Order).where(Order.group_id == group_id)).all():
            if order.status == O.PENDING_PAYMENT.value:
                cancel(session=session, ctx=ctx, order_id=order.id, reason="group_expired")
            elif order.status in REFUNDABLE:
                refund(
                    session=session,
                    ctx=ctx,
                    provider=provider,
                    order_id=order.id,
                    user=None,
                    reason="group expired",
                    restock=True,
                )
    return expired


# --- reading orders -----------------------------------------------------------------------


def get_order(*, session: Session, order_id: int, for_update: bool = False) -> Order:
    """An order with its lines, or 404."""
    query = (
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )
    order = session.scalar(query)
    if order is None:
        raise NotFound("No such order.")
    return order


def visible_order(*, session: Session, order_id: int, user: User) -> Order:
    """An order its shopper, its merchant's owner or an operator may see; else 404."""
    order = get_order(session=session, order_id=order_id)
    if order.shopper_id == user.id:
        return order
    merchant = session.get(Merchant, order.merchant_id)
    ensure_owner(merchant.owner_id if merchant else None, user, what="order")
    return order


def merchant_order(*, session: Session, order_id: int, user: User) -> Order:
    """An order of a shop the user owns (or any, for operators); else 404."""
    order = get_order(session=session, order_id=order_id)
    merchant = session.get(Merchant, order.merchant_id)
    ensure_owner(merchant.owner_id if merchant else None, user, what="order")
    return order


def list_orders(
    *,
    session: Session,
    shopper_id: int | None = None,
    merchant_ids: list[int] | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Order], int]:
    """Order history, newest first."""
    query = select(Order)
    if shopper_id is not None:
        query = query.where(Order.shopper_id == shopper_id)
    if merchant_ids is not None:
        query = query.where(Order.merchant_id.in_(merchant_ids))
    if status is not None:
        query = query.where(Order.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Order.lines))
        .order_by(Order.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


# --- state changes ------------------------------------------------------------------------


def _set_status(
    session: Session, order_id: int, to: OrderStatus, allowed: tuple[str, ...], **values: Any
) -> bool:
    done = session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status.in_(allowed))
        .values(status=to.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(done) == 1


def _lines_with_items(session: Session, order_id: int) -> list[tuple[OrderLine, DealItem | None]]:
    return [
        (line, item)
        for line, item in session.execute(
            select(OrderLine, DealItem)
            .outerjoin(DealItem, DealItem.id == OrderLine.deal_item_id)
            .where(OrderLine.order_id == order_id)
            .order_by(OrderLine.id)
            .execution_options(populate_existing=True)
        ).all()
    ]


def cancel(
    *,
    session: Session,
    ctx: Buying,
    order_id: int,
    reason: str,
    user: User | None = None,
) -> Order:
    """Cancel an unpaid order: its stock goes back on sale, its coupon back to the shopper."""
    order = get_order(session=session, order_id=order_id)
    if user is not None and order.shopper_id != user.id:
        visible_order(session=session, order_id=order_id, user=user)
    if not _set_status(
        session,
        order.id,
        O.CANCELLED,
        (O.PENDING_PAYMENT.value,),
        cancelled_at=utcnow(),
        cancel_reason=reason,
    ):
        raise Conflict(
            f"The order is {order.status}; only unpaid orders can be cancelled.",
            code="order_not_cancellable",
            details={"status": order.status},
        )
    for line, item in _lines_with_items(session, order.id):
        if item is not None:
            backend_for(item.stock_backend, ctx.redis_client).release(
                session,
                item=_item_ref(item),
                shopper_id=order.shopper_id,
                quantity=line.quantity,
                op_id=f"c:{order.id}:{item.id}",
            )
    if order.coupon_claim_id is not None:
        coupons.release_coupon(session=session, claim_id=order.coupon_claim_id)
    if order.group_id is not None:
        session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == order.group_id, GroupBuy.status == "open", GroupBuy.member_count > 0
            )
            .values(member_count=GroupBuy.member_count - 1)
            .execution_options(synchronize_session=False)
        )
    publish(session, OrderCancelled(order_id=order.id))
    return get_order(session=session, order_id=order.id)


def expire_unpaid(
    *, session: Session, ctx: Buying, now: datetime | None = None, batch: int = 200
) -> int:
    """Sweep: cancel orders left unpaid past their deadline, releasing their stock."""
    now = now or utcnow()
    ids = session.scalars(
        select(Order.id)
        .where(Order.status == O.PENDING_PAYMENT.value, Order.expires_at <= now)
        .order_by(Order.expires_at)
        .limit(batch)
    ).all()
    cancelled = 0
    for order_id in ids:
        try:
            with session.begin_nested():
                cancel(session=session, ctx=ctx, order_id=order_id, reason="payment_timeout")
            cancelled += 1
        except Conflict:  # paid or cancelled meanwhile
            continue
    return cancelled


def mark_paid(*, session: Session, ctx: Buying, order_id: int, now: datetime | None = None) -> bool:
    """The provider confirmed payment: pending -> paid, reserved -> sold. False if the order
    was no longer pending (the caller refunds the money)."""
    now = now or utcnow()
    if not _set_status(session, order_id, O.PAID, (O.PENDING_PAYMENT.value,), paid_at=now):
        return False
    order = get_order(session=session, order_id=order_id)
    for line, item in _lines_with_items(session, order_id):
        if item is not None:
            backend_for(item.stock_backend, ctx.redis_client).sell(
                session,
                item=_item_ref(item),
                quantity=line.quantity,
                op_id=f"p:{order_id}:{item.id}",
            )
    if order.group_id is not None:
        session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == order.group_id, GroupBuy.status == "open")
            .values(paid_count=GroupBuy.paid_count + 1)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == order.group_id,
                GroupBuy.status == "open",
                GroupBuy.paid_count >= GroupBuy.size,
            )
            .values(status="filled", filled_at=now)
            .execution_options(synchronize_session=False)
        )
    publish(session, OrderPaid(order_id=order_id))
    return True


def ship(*, session: Session, user: User, order_id: int) -> Order:
    """The merchant marks a paid order shipped (a group deal's group must have filled)."""
    order = merchant_order(session=session, order_id=order_id, user=user)
    if order.group_id is not None:
        group = session.get(GroupBuy, order.group_id)
        if group is None or group.status != "filled":
            raise Conflict("The group has not filled yet.", code="group_not_filled")
    if not _set_status(session, order.id, O.SHIPPED, (O.PAID.value,), shipped_at=utcnow()):
        raise Conflict(
            f"The order is {order.status}; only paid orders can be shipped.",
            code="order_not_shippable",
            details={"status": order.status},
        )
    return get_order(session=session, order_id=order.id)


def confirm_receipt(
    *, session: Session, order_id: int, user: User | None = None, now: datetime | None = None
) -> Order:
    """The shopper confirms receipt (or the sweep does, after N days); return windows start."""
    order = get_order(session=session, order_id=order_id)
    if user is not None and order.shopper_id != user.id:
        raise NotFound("No such order.")
    if not _set_status(
        session, order.id, O.RECEIVED, (O.SHIPPED.value,), received_at=now or utcnow()
    ):
        raise Conflict(
            f"The order is {order.status}; only shipped orders can be received.",
            code="order_not_shipped",
            details={"status": order.status},
        )
    publish(session, OrderReceived(order_id=order.id))
    return get_order(session=session, order_id=order.id)


def auto_confirm_receipts(*, session: Session, after_days: int, now: datetime | None = None) -> int:
    """Sweep: shipped orders count as received after ``after_days`` days."""
    now = now or utcnow()
    ids = session.scalars(
        select(Order.id)
        .where(
            Order.status == O.SHIPPED.value, Order.shipped_at <= now - timedelta(days=after_days)
        )
        .limit(200)
    ).all()
    done = 0
    for order_id in ids:
        try:
            with session.begin_nested():
                confirm_receipt(session=session, order_id=order_id, now=now)
            done += 1
        except Conflict:
            continue
    return done


def refund(
    *,
    session: Session,
    ctx: Buying,
    provider: PaymentProvider,
    order_id: int,
    user: User | None,
    lines: list[tuple[int, int]] | None = None,
    reason: str = "",
    restock: bool | None = None,
) -> Refund:
    """Refund some units of a paid order (all when ``lines`` is None). ``restock`` returns
    the units to the deal (default: the deal item's policy)."""
    order = (
        merchant_order(session=session, order_id=order_id, user=user)
        if user is not None
        else get_order(session=session, order_id=order_id)
    )
    if order.status not in REFUNDABLE:
        raise Conflict(
            f"The order is {order.status}; it cannot be refunded.",
            code="order_not_refundable",
            details={"status": order.status},
        )
    pairs = _lines_with_items(session, order.id)
    by_id = {line.id: (line, item) for line, item in pairs}
    wanted = (
        lines
        if lines is not None
        else [(line.id, line.quantity - line.refunded_quantity) for line, _ in pairs]
    )
    wanted = [(lid, q) for lid, q in wanted if q > 0]
    if not wanted:
        raise Conflict("Nothing is left to refund.", code="nothing_to_refund")
    record = Refund(
        order_id=order.id,
        amount_minor=1,
        currency=order.currency,
        reason=reason,
        restocked=False,
        created_by_id=user.id if user else None,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    total = 0
    any_restock = False
    for index, (line_id, quantity) in enumerate(wanted):
        if line_id not in by_id:
            raise Unprocessable(
                "No such line in this order.",
                code="line_not_found",
                details={"field": f"body.lines.{index}.order_line_id"},
            )
        line, item = by_id[line_id]
        amount = refund_amount(line, quantity, index=index)
        put_back = restock if restock is not None else bool(item and item.restock_on_refund)
        back = quantity if (put_back and item is not None) else 0
        done = session.execute(
            update(OrderLine)
            .where(
                OrderLine.id == line.id,
                OrderLine.refunded_quantity + quantity <= OrderLine.quantity,
            )
            .values(
                refunded_quantity=OrderLine.refunded_quantity + quantity,
                refunded_minor=OrderLine.refunded_minor + amount,
                restocked_quantity=OrderLine.restocked_quantity + back,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(done) != 1:
            raise Conflict("This line was refunded meanwhile.", code="refund_conflict")
        session.add(
            RefundLine(
                refund_id=record.id,
                order_line_id=line.id,
                quantity=quantity,
                amount_minor=amount,
                restocked_quantity=back,
            )
        )
        if item is not None:
            backend_for(item.stock_backend, ctx.redis_client).refund(
                session,
                item=_item_ref(item),
                shopper_id=order.shopper_id,
                quantity=quantity,
                restock=bool(back),
                op_id=f"r:{record.id}:{item.id}",
            )
        any_restock = any_restock or bool(back)
        total += amount
    fully = all(
        (line.refunded_quantity + dict(wanted).get(line.id, 0)) >= line.quantity
        for line, _ in pairs
    )
    session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(
            refunded_minor=Order.refunded_minor + total,
            updated_at=utcnow(),
            **({"status": O.REFUNDED.value} if fully else {}),
        )
        .execution_options(synchronize_session=False)
    )
    record.amount_minor = max(total, 1) if total else 0
    record.restocked = any_restock
    if total == 0:
        # A free (fully discounted) order: nothing to send back, keep the record honest.
        raise Unprocessable(
            "This order was free; there is nothing to refund.", code="nothing_to_refund"
        )
    paid = session.scalar(
        select(Payment).where(Payment.order_id == order.id, Payment.status == "succeeded")
    )
    if paid is not None:
        provider.refund(provider_ref=paid.provider_ref, amount_minor=total)
    session.flush()
    publish(session, OrderRefunded(order_id=order.id, refund_id=record.id, amount_minor=total))
    return record


def refund_amount(line: OrderLine, quantity: int, *, index: int) -> int:
    """What refunding ``quantity`` units of ``line`` gives back (the last units take the
    remainder, so rounding never loses a cent); 422 on ``body.lines.<index>.quantity`` when
    fewer units are left."""
    left = line.quantity - line.refunded_quantity
    if quantity > left:
        raise Unprocessable(
            f"Only {left} unit(s) of this line can be refunded.",
            code="refund_exceeds_quantity",
            details={"field": f"body.lines.{index}.quantity", "left": left},
        )
    if quantity == left:
        return line.amount_minor - line.refunded_minor
    return line.amount_minor * quantity // line.quantity


def refunds_of(*, session: Session, order_id: int) -> list[Refund]:
    """An order's refunds with their lines."""
    return list(
        session.scalars(
            select(Refund)
            .where(Refund.order_id == order_id)
            .options(selectinload(Refund.lines))
            .order_by(Refund.id)
        ).all()
    )


def check_merchant(session: Session, user: User, merchant_id: int) -> None:
    catalog.owned_merchant(session=session, merchant_id=merchant_id, user=user)


def backend_of(item: DealItem, ctx: Buying) -> StockBackend:
    return backend_for(item.stock_backend, ctx.redis_client)


# --- payments -----------------------------------------------------------------------------


def start_payment(
    *, session: Session, provider: PaymentProvider, user: User, order_id: int
) -> Payment:
    """Open a payment for an unpaid order; an open payment is reused, never doubled."""
    order = get_order(session=session, order_id=order_id)
    if order.shopper_id != user.id:
        raise NotFound("No such order.")
    if order.status != O.PENDING_PAYMENT.value:
        code = "order_already_paid" if order.paid_at else "order_not_payable"
        raise Conflict(
            f"The order is {order.status}; it cannot be paid.",
            code=code,
            details={"status": order.status},
        )
    # Serialize concurrent "pay" clicks on this order (row lock on PostgreSQL; SQLite
    # write transactions are serialized already).
    session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    open_payment = session.scalar(
        select(Payment).where(Payment.order_id == order.id, Payment.status == "pending")
    )
    if open_payment is not None:
        return open_payment
    payment = Payment(
        order_id=order.id,
        provider=provider.name,
        provider_ref=provider.create_charge(
            amount_minor=order.total_minor,
            currency=order.currency,
            description=f"Juxing order {order.id}",
        ),
        amount_minor=order.total_minor,
        currency=order.currency,
        status="pending",
        created_at=utcnow(),
    )
    session.add(payment)
    session.flush()
    return payment


def get_payment(*, session: Session, payment_id: int, user: User) -> Payment:
    """A payment its order's shopper (or an operator) may see; else 404."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    visible_order(session=session, order_id=payment.order_id, user=user)
    return payment


def handle_callback(
    *,
    session: Session,
    ctx: Buying,
    provider: PaymentProvider,
    body: bytes,
    signature: str | None,
) -> str:
    """Apply a signed provider callback exactly once; returns what happened."""
    from sqlalchemy.exc import IntegrityError

    from juxing.deals.payments import InvalidSignature
    from juxing.kit.errors import Unauthorized
    from juxing.models.orders import ProviderCallback

    try:
        event = provider.verify_callback(body=body, signature=signature)
    except InvalidSignature as exc:
        raise Unauthorized(
            "The callback signature is not valid.", code="invalid_signature"
        ) from exc
    payment = session.scalar(
        select(Payment).where(
            Payment.provider == provider.name, Payment.provider_ref == event.provider_ref
        )
    )
    record = ProviderCallback(
        provider=provider.name,
        event_id=event.event_id,
        payment_id=payment.id if payment else None,
        payload=body.decode(errors="replace")[:4000],
        outcome="pending",
        received_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        return "duplicate_event"
    if payment is None:
        record.outcome = "unknown_payment"
        return record.outcome
    if event.amount_minor != payment.amount_minor or event.currency != payment.currency:
        record.outcome = "amount_mismatch"
        return record.outcome
    now = utcnow()
    if event.outcome != "succeeded":
        failed = session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == "pending")
            .values(status="failed", failure_reason=event.outcome[:120], confirmed_at=now)
            .execution_options(synchronize_session=False)
        )
        record.outcome = "failed" if rowcount(failed) else "ignored_not_pending"
        return record.outcome
    succeeded = session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status.in_(["pending", "failed"]))
        .values(status="succeeded", confirmed_at=now, failure_reason=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(succeeded) != 1:
        record.outcome = "duplicate_success"
        return record.outcome
    if mark_paid(session=session, ctx=ctx, order_id=payment.order_id, now=now):
        record.outcome = "paid"
        return record.outcome
    # The money arrived for an order that is no longer payable (timed out, cancelled, or
    # paid through another payment): give it back at once.
    session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(status="refunded", failure_reason="order not payable when confirmed")
        .execution_options(synchronize_session=False)
    )
    provider.refund(provider_ref=payment.provider_ref, amount_minor=payment.amount_minor)
    record.outcome = "late_refunded"
    return record.outcome
