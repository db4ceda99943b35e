"""Shoppers' refund requests (退款申请): ask, then the shop approves or rejects.

Lifecycle::

    open -> approved   (the shop's owner or an operator; or automatically after N days)
    open -> rejected   (the shop's owner or an operator, with a reason)
    open -> cancelled  (the shopper)

Approval makes the refund through ``orders.refund`` -- the same path as a refund the shop
starts itself -- so stock goes back to the deal by the deal item's policy, the money goes
back through the payment provider and commission is clawed back by its ``OrderRefunded``
handler. Every transition is a conditional UPDATE on ``status = 'open'``, so a double click,
two reviewers or the auto-approval job racing a reviewer apply at most one decision, and the
refund is made at most once. Each step is recorded (``refund_request_transitions``) and the
other side is notified through the marketplace's notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from juxing.commission.policy import POLICY
from juxing.deals import orders
from juxing.deals.payments import PaymentProvider
from juxing.deals.stock import rowcount
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import utcnow
from juxing.marketplace.service import notify
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant
from juxing.models.orders import Order, OrderLine
from juxing.models.refund_requests import (
    RefundReason,
    RefundRequest,
    RefundRequestLine,
    RefundRequestStatus,
    RefundRequestTransition,
)

S = RefundRequestStatus
REASONS = tuple(r.value for r in RefundReason)


@dataclass(frozen=True)
class Wanted:
    """Units of one order line, with what they refund (the refund path's own formula)."""

    line: OrderLine
    quantity: int
    amount_minor: int


def _money(amount_minor: int) -> str:
    """Minor units as ``12.90`` for a notification's text (no floats)."""
    units, cents = divmod(amount_minor, 100)
    return f"{units}.{cents:02d}"


def return_window_closes(order: Order) -> datetime | None:
    """When the shopper can no longer ask: the return window after receipt (commission's
    ``return_window_days``, 7); None before receipt (always allowed)."""
    if order.received_at is None:
        return None
    return order.received_at + timedelta(days=POLICY.return_window_days)


def _wanted(order: Order, lines: list[tuple[int, int]] | None) -> list[Wanted]:
    """The units asked for, checked against what is left of each line (422 with the field)."""
    by_id = {line.id: line for line in order.lines}
    if lines is None:
        lines = [(x.id, x.quantity - x.refunded_quantity) for x in order.lines]
        lines = [(lid, q) for lid, q in lines if q > 0]
        if not lines:
            raise Conflict("Nothing is left to refund.", code="nothing_to_refund")
    out: list[Wanted] = []
    seen: set[int] = set()
    for index, (line_id, quantity) in enumerate(lines):
        line = by_id.get(line_id)
        if line is None:
            raise Unprocessable(
                "No such line in this order.",
                code="line_not_found",
                details={"field": f"body.lines.{index}.order_line_id"},
            )
        if line_id in seen:
            raise Unprocessable(
                "Each line may be listed once.",
                code="duplicate_line",
                details={"field": f"body.lines.{index}.order_line_id"},
            )
        seen.add(line_id)
        amount = orders.refund_amount(line, quantity, index=index)
        out.append(Wanted(line=line, quantity=quantity, amount_minor=amount))
    return out


def _owner_id(session: Session, merchant_id: int) -> int | None:
    merchant = session.get(Merchant, merchant_id)
    return merchant.owner_id if merchant is not None else None


def _actor_role(session: Session, request: RefundRequest, user: User | None) -> str:
    if user is None:
        return "system"
    if user.id == request.shopper_id:
        return "shopper"
    if _owner_id(session, request.merchant_id) == user.id:
        return "merchant"
    return "operator" if user.has_role(Role.OPERATOR) else "merchant"


def _record(
    session: Session,
    request: RefundRequest,
    *,
    from_status: str | None,
    to_status: str,
    user: User | None,
    note: str = "",
    now: datetime,
) -> None:
    session.add(
        RefundRequestTransition(
            request_id=request.id,
            from_status=from_status,
            to_status=to_status,
            actor_id=user.id if user else None,
            actor_role=_actor_role(session, request, user),
            note=note[:200],
            created_at=now,
        )
    )


def get(*, session: Session, request_id: int) -> RefundRequest:
    """A request with its lines and transitions, or 404."""
    request = session.scalar(
        select(RefundRequest)
        .where(RefundRequest.id == request_id)
        .options(selectinload(RefundRequest.lines), selectinload(RefundRequest.transitions))
        .execution_options(populate_existing=True)
    )
    if request is None:
        raise NotFound("No such refund request.")
    return request


def visible(*, session: Session, request_id: int, user: User) -> RefundRequest:
    """A request its shopper, its shop's owner or an operator may see; else 404."""
    request = get(session=session, request_id=request_id)
    if request.shopper_id == user.id or user.has_role(Role.OPERATOR):
        return request
    if _owner_id(session, request.merchant_id) != user.id:
        raise NotFound("No such refund request.")
    return request


def _for_shop(session: Session, request_id: int, user: User) -> RefundRequest:
    """A request of a shop the user owns (or any, for operators); else 404."""
    request = get(session=session, request_id=request_id)
    if user.has_role(Role.OPERATOR) or _owner_id(session, request.merchant_id) == user.id:
        return request
    raise NotFound("No such refund request.")


def create(
    *,
    session: Session,
    user: User,
    order_id: int,
    reason: str,
    note: str = "",
    lines: list[tuple[int, int]] | None = None,
    auto_approve_days: int = 3,
    now: datetime | None = None,
) -> RefundRequest:
    """The shopper asks for a refund of some units (all that is left when ``lines`` is None)
    of their own paid, shipped or received order; one open request per order."""
    now = now or utcnow()
    order = orders.get_order(session=session, order_id=order_id)
    if order.shopper_id != user.id:
        raise NotFound("No such order.")
    if order.status not in orders.REFUNDABLE:
        raise Conflict(
            f"The order is {order.status}; a refund cannot be asked for.",
            code="order_not_refundable",
            details={"status": order.status},
        )
    closes = return_window_closes(order)
    if closes is not None and now > closes:
        raise Unprocessable(
            f"The return window closed {POLICY.return_window_days} days after receipt.",
            code="return_window_closed",
            details={"field": "path.order_id", "closed_at": closes.isoformat()},
        )
    open_id = session.scalar(
        select(RefundRequest.id).where(RefundRequest.open_order_id == order.id)
    )
    if open_id is not None:
        raise _already_open(open_id)
    if reason not in REASONS:  # the API's schema checks it first; this guards other callers
        raise Unprocessable(
            "Not a refund reason.", code="invalid_reason", details={"field": "body.reason"}
        )
    wanted = _wanted(order, lines)
    total = sum(w.amount_minor for w in wanted)
    if total <= 0:
        raise Unprocessable(
            "This order was free; there is nothing to refund.", code="nothing_to_refund"
        )
    request = RefundRequest(
        order_id=order.id,
        open_order_id=order.id,
        shopper_id=user.id,
        merchant_id=order.merchant_id,
        status=S.OPEN.value,
        reason=reason,
        note=note[:500],
        amount_minor=total,
        currency=order.currency,
        created_at=now,
        due_at=now + timedelta(days=auto_approve_days),
    )
    try:
        with session.begin_nested():
            session.add(request)
            session.flush()
    except IntegrityError:  # a concurrent request for the same order got there first
        existing = session.scalar(
            select(RefundRequest.id).where(RefundRequest.open_order_id == order.id)
        )
        raise _already_open(existing) from None
    for w in wanted:
        session.add(
            RefundRequestLine(
                request_id=request.id,
                order_line_id=w.line.id,
                quantity=w.quantity,
                amount_minor=w.amount_minor,
            )
        )
    _record(session, request, from_status=None, to_status=S.OPEN.value, user=user, now=now)
    _tell_shop(session, request, "refund_requested", f"the shopper asks for a refund ({reason}).")
    session.flush()
    return get(session=session, request_id=request.id)


def _already_open(request_id: int | None) -> Conflict:
    return Conflict(
        "This order already has an open refund request.",
        code="refund_request_open",
        details={"refund_request_id": request_id},
    )


def _decide(
    session: Session,
    request: RefundRequest,
    *,
    to: RefundRequestStatus,
    user: User | None,
    now: datetime,
    note: str = "",
    **values: object,
) -> None:
    """open -> ``to``, once (409 when the request was decided or cancelled meanwhile), with
    its transition recorded."""
    done = session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request.id, RefundRequest.status == S.OPEN.value)
        .values(
            status=to.value,
            open_order_id=None,
            decided_at=now,
            decided_by_id=user.id if user else None,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        current = session.scalar(select(RefundRequest.status).where(RefundRequest.id == request.id))
        raise Conflict(
            f"The refund request is {current}.",
            code="refund_request_not_open",
            details={"status": current},
        )
    _record(
        session,
        request,
        from_status=S.OPEN.value,
        to_status=to.value,
        user=user,
        note=note,
        now=now,
    )


def _tell(session: Session, request: RefundRequest, user_id: int, kind: str, message: str) -> None:
    """A notification about this request to ``user_id``."""
    notify(
        session,
        user_id=user_id,
        kind=kind,
        message=f"Order #{request.order_id}: {message}",
        data={"order_id": request.order_id, "refund_request_id": request.id},
    )


def _tell_shop(session: Session, request: RefundRequest, kind: str, message: str) -> None:
    owner = _owner_id(session, request.merchant_id)
    if owner is not None:
        _tell(session, request, owner, kind, message)


def _stale(session: Session, request: RefundRequest) -> str | None:
    """Why the request can no longer be refunded as asked (the order changed), or None."""
    status = session.scalar(select(Order.status).where(Order.id == request.order_id))
    if status not in orders.REFUNDABLE:
        return f"the order is {status}"
    left = dict(
        session.execute(
            select(OrderLine.id, OrderLine.quantity - OrderLine.refunded_quantity).where(
                OrderLine.order_id == request.order_id
            )
        ).all()
    )
    for line in request.lines:
        if line.quantity > left.get(line.order_line_id, 0):
            return "some units were refunded meanwhile"
    return None


def _refund(
    session: Session,
    ctx: orders.Buying,
    provider: PaymentProvider,
    request: RefundRequest,
    user: User | None,
) -> int:
    refund = orders.refund(
        session=session,
        ctx=ctx,
        provider=provider,
        order_id=request.order_id,
        user=user,
        lines=[(x.order_line_id, x.quantity) for x in request.lines],
        reason=f"Refund request #{request.id}: {request.reason}",
    )
    session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request.id)
        .values(refund_id=refund.id, amount_minor=refund.amount_minor)
        .execution_options(synchronize_session=False)
    )
    return refund.amount_minor


def approve(
    *,
    session: Session,
    ctx: orders.Buying,
    provider: PaymentProvider,
    request_id: int,
    user: User,
    note: str = "",
    now: datetime | None = None,
) -> RefundRequest:
    """The shop's owner (or an operator) approves: the refund is made through
    ``orders.refund`` (stock by the deal item's policy, provider refund, commission
    clawback). A second approval is 409 and refunds nothing."""
    now = now or utcnow()
    request = _for_shop(session, request_id, user)
    if request.status == S.OPEN.value:
        why = _stale(session, request)
        if why is not None:
            raise Conflict(
                f"The order changed since the request ({why}); reject it instead.",
                code="refund_request_stale",
            )
    _decide(session, request, to=S.APPROVED, user=user, now=now, note=note)
    amount = _refund(session, ctx, provider, request, user)
    _tell(
        session,
        request,
        request.shopper_id,
        "refund_approved",
        f"your refund request was approved ({_money(amount)} {request.currency}).",
    )
    session.flush()
    return get(session=session, request_id=request.id)


def reject(
    *,
    session: Session,
    request_id: int,
    user: User,
    reason: str,
    now: datetime | None = None,
) -> RefundRequest:
    """The shop's owner (or an operator) refuses, with a reason the shopper sees."""
    now = now or utcnow()
    request = _for_shop(session, request_id, user)
    _decide(
        session, request, to=S.REJECTED, user=user, now=now, note=reason, reject_reason=reason[:200]
    )
    _tell(
        session,
        request,
        request.shopper_id,
        "refund_rejected",
        f"your refund request was rejected: {reason}",
    )
    session.flush()
    return get(session=session, request_id=request.id)


def cancel(
    *, session: Session, request_id: int, user: User, now: datetime | None = None
) -> RefundRequest:
    """The shopper withdraws an open request (then may ask again)."""
    now = now or utcnow()
    request = get(session=session, request_id=request_id)
    if request.shopper_id != user.id:
        raise NotFound("No such refund request.")
    _decide(session, request, to=S.CANCELLED, user=user, now=now)
    _tell_shop(session, request, "refund_cancelled", "the shopper withdrew the refund request.")
    session.flush()
    return get(session=session, request_id=request.id)


def due(*, session: Session, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Open requests past their auto-approval time, oldest first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(RefundRequest.id)
            .where(RefundRequest.status == S.OPEN.value, RefundRequest.due_at <= now)
            .order_by(RefundRequest.due_at, RefundRequest.id)
            .limit(limit)
        ).all()
    )


def auto_approve(
    *,
    session: Session,
    ctx: orders.Buying,
    provider: PaymentProvider,
    request_id: int,
    now: datetime | None = None,
) -> str:
    """The shop did not answer in time: approve as the system. A request the order no
    longer allows (refunded meanwhile by the shop) is closed as rejected with that reason.
    Returns what happened: ``approved``, ``rejected`` or ``skipped`` (no longer open/due)."""
    now = now or utcnow()
    request = get(session=session, request_id=request_id)
    if request.status != S.OPEN.value or request.due_at > now:
        return "skipped"
    why = _stale(session, request)
    if why is not None:
        text = f"Could not be refunded automatically: {why}."
        _decide(session, request, to=S.REJECTED, user=None, now=now, note=text, reject_reason=text)
        _tell(
            session,
            request,
            request.shopper_id,
            "refund_rejected",
            f"your refund request was closed: {text}",
        )
        return "rejected"
    _decide(
        session,
        request,
        to=S.APPROVED,
        user=None,
        now=now,
        note="approved automatically: the shop did not answer in time",
    )
    amount = _refund(session, ctx, provider, request, None)
    _tell(
        session,
        request,
        request.shopper_id,
        "refund_auto_approved",
        f"your refund request was approved automatically ({_money(amount)} {request.currency}).",
    )
    _tell_shop(
        session,
        request,
        "refund_auto_approved",
        "a refund request nobody answered was approved automatically.",
    )
    session.flush()
    return "approved"


def of_order(*, session: Session, order_id: int) -> list[RefundRequest]:
    """An order's requests, newest first, with lines and transitions."""
    return list(
        session.scalars(
            select(RefundRequest)
            .where(RefundRequest.order_id == order_id)
            .options(selectinload(RefundRequest.lines), selectinload(RefundRequest.transitions))
            .order_by(RefundRequest.id.desc())
        ).all()
    )


def list_for(
    *,
    session: Session,
    user: User,
    status: str | None = None,
    merchant_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RefundRequest], int]:
    """Requests the user may see, newest first: their own as a shopper and those of the shops
    they own (operators: every request)."""
    query = select(RefundRequest)
    if not user.has_role(Role.OPERATOR):
        shops = select(Merchant.id).where(Merchant.owner_id == user.id)
        query = query.where(
            or_(RefundRequest.shopper_id == user.id, RefundRequest.merchant_id.in_(shops))
        )
    if status is not None:
        query = query.where(RefundRequest.status == status)
    if merchant_id is not None:
        query = query.where(RefundRequest.merchant_id == merchant_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(RefundRequest.lines), selectinload(RefundRequest.transitions))
        .order_by(RefundRequest.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total
