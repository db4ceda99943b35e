"""The merchant–creator marketplace: briefs, applications, escrowed fees, notifications.

Lifecycle of an application (every step notifies the other side)::

    applied ─accept─▶ accepted ─deliver─▶ delivered ─approve─▶ approved
      │ └decline─▶ declined  │                   └dispute─▶ disputed ─resolve─▶ resolved
      └withdraw─▶ withdrawn  └(deadline)─▶ expired

Transitions are conditional ``UPDATE``\\s on the current status, so two racing requests
cannot both win; money moves through :mod:`juxing.marketplace.escrow` in the same
transaction as the status change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from juxing.kit.auth import ensure_owner
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import ensure_utc, utcnow
from juxing.marketplace import escrow
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.content import LiveRoom, Post, PostStatus, PostType
from juxing.models.deals import DealItem
from juxing.models.marketplace import (
    ENGAGED,
    ApplicationStatus,
    Brief,
    BriefApplication,
    BriefItem,
    BriefStatus,
    Deliverable,
    MarketplaceNotification,
)

# After the deadline, a merchant has this long to approve or dispute a delivery before the
# fee is released to the creator automatically.
REVIEW_WINDOW = timedelta(days=3)


@dataclass(frozen=True)
class ItemSpec:
    product_id: int
    deal_item_id: int | None = None


# ---------------------------------------------------------------- notifications


def notify(
    session: Session,
    *,
    user_id: int,
    kind: str,
    message: str,
    brief_id: int | None = None,
    application_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> MarketplaceNotification:
    """Leave a note for ``user_id`` about a marketplace step."""
    note = MarketplaceNotification(
        user_id=user_id,
        kind=kind,
        message=message[:500],
        brief_id=brief_id,
        application_id=application_id,
        data=data or {},
    )
    session.add(note)
    return note


def list_notifications(
    *, session: Session, user: User, unread_only: bool = False, limit: int = 50, offset: int = 0
) -> tuple[list[MarketplaceNotification], int]:
    """The user's marketplace notifications, newest first."""
    q = select(MarketplaceNotification).where(MarketplaceNotification.user_id == user.id)
    if unread_only:
        q = q.where(MarketplaceNotification.read_at.is_(None))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(MarketplaceNotification.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total)


def mark_notifications_read(*, session: Session, user: User, up_to_id: int | None = None) -> int:
    """Mark the user's notifications read (all, or those with id ≤ ``up_to_id``)."""
    stmt = update(MarketplaceNotification).where(
        MarketplaceNotification.user_id == user.id, MarketplaceNotification.read_at.is_(None)
    )
    if up_to_id is not None:
        stmt = stmt.where(MarketplaceNotification.id <= up_to_id)
    res = session.execute(
        stmt.values(read_at=utcnow()).execution_options(synchronize_session=False)
    )
    return int(res.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- briefs


def _merchant_for(session: Session, *, user: User, merchant_id: int | None) -> Merchant:
    if merchant_id is None:
        shops = session.scalars(
            select(Merchant).where(Merchant.owner_id == user.id).order_by(Merchant.id)
        ).all()
        if not shops:
            raise Unprocessable("Open a shop before posting a brief.", code="no_merchant")
        if len(shops) > 1:
            raise Unprocessable(
                "You own several shops: say which one with merchant_id.",
                code="merchant_required",
                details=[{"field": "body.merchant_id", "message": "required"}],
            )
        return shops[0]
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    ensure_owner(merchant.owner_id, user, operator_may=False, what="merchant")
    return merchant


def _check_items(session: Session, *, merchant_id: int, items: Sequence[ItemSpec]) -> None:
    product_ids = {i.product_id for i in items}
    owned = set(
        session.scalars(
            select(Product.id).where(
                Product.id.in_(product_ids), Product.merchant_id == merchant_id
            )
        ).all()
    )
    bad = [
        {"field": f"body.items.{n}.product_id", "message": "not a product of this shop"}
        for n, i in enumerate(items)
        if i.product_id not in owned
    ]
    deal_ids = {i.deal_item_id for i in items if i.deal_item_id is not None}
    if deal_ids:
        deal_products = dict(
            session.execute(
                select(DealItem.id, Sku.product_id)
                .join(Sku, Sku.id == DealItem.sku_id)
                .where(DealItem.id.in_(deal_ids))
            ).all()
        )
        bad += [
            {"field": f"body.items.{n}.deal_item_id", "message": "not a deal item of that product"}
            for n, i in enumerate(items)
            if i.deal_item_id is not None and deal_products.get(i.deal_item_id) != i.product_id
        ]
    if bad:
        raise Unprocessable(
            "Some brief items are not yours to promote.", code="invalid_items", details=bad
        )


def create_brief(
    *,
    session: Session,
    user: User,
    merchant_id: int | None,
    title: str,
    description: str,
    deliverable: str,
    post_type: str | None,
    commission_rate_bp: int,
    fixed_fee_minor: int,
    budget_minor: int,
    currency: str,
    deadline: datetime,
    wanted_segments: Sequence[str],
    items: Sequence[ItemSpec],
) -> Brief:
    """Post a promotion brief for the merchant's products or deal items."""
    merchant = _merchant_for(session, user=user, merchant_id=merchant_id)
    problems = []
    if ensure_utc(deadline) <= utcnow():
        problems.append({"field": "body.deadline", "message": "must be in the future"})
    if commission_rate_bp == 0 and fixed_fee_minor == 0:
        problems.append(
            {
                "field": "body.fixed_fee_minor",
                "message": "offer a fixed fee, a commission rate or both",
            }
        )
    if fixed_fee_minor > budget_minor:
        problems.append(
            {"field": "body.budget_minor", "message": "must cover at least one fixed fee"}
        )
    if deliverable == Deliverable.LIVE and post_type not in (None, PostType.LIVE):
        problems.append(
            {"field": "body.post_type", "message": "a live deliverable has no post type"}
        )
    if not items:
        problems.append({"field": "body.items", "message": "name at least one product"})
    if problems:
        raise Unprocessable("The brief is not valid.", code="invalid_brief", details=problems)
    _check_items(session, merchant_id=merchant.id, items=items)
    brief = Brief(
        merchant_id=merchant.id,
        created_by_id=user.id,
        title=title,
        description=description,
        deliverable=deliverable,
        post_type=post_type,
        commission_rate_bp=commission_rate_bp,
        fixed_fee_minor=fixed_fee_minor,
        budget_minor=budget_minor,
        committed_minor=0,
        currency=currency,
        deadline=ensure_utc(deadline),
        wanted_segments=list(dict.fromkeys(wanted_segments)),
        status=BriefStatus.OPEN.value,
        items=[BriefItem(product_id=i.product_id, deal_item_id=i.deal_item_id) for i in items],
    )
    session.add(brief)
    session.flush()
    return brief


def _brief_query() -> Select[Brief]:
    return select(Brief).options(selectinload(Brief.items))


def merchant_owner_id(session: Session, merchant_id: int) -> int | None:
    return session.scalar(select(Merchant.owner_id).where(Merchant.id == merchant_id))


def get_brief(*, session: Session, brief_id: int, user: User) -> Brief:
    """A brief: open ones to any creator; any to its merchant and operators."""
    brief = session.scalar(_brief_query().where(Brief.id == brief_id))
    if brief is None:
        raise NotFound("No such brief.")
    if brief.status == BriefStatus.OPEN and user.has_role(Role.CREATOR):
        return brief
    if user.has_role(Role.CREATOR) and session.scalar(
        select(BriefApplication.id).where(
            BriefApplication.brief_id == brief_id, BriefApplication.creator_id == user.id
        )
    ):
        return brief
    ensure_owner(merchant_owner_id(session, brief.merchant_id), user, what="brief")
    return brief


def list_briefs(
    *,
    session: Session,
    user: User,
    mine: bool = False,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Brief], int]:
    """Briefs a user may see: a merchant's own (``mine``), open ones for creators, all for
    operators."""
    q = _brief_query()
    if mine or (user.has_role(Role.MERCHANT) and not user.has_role(Role.CREATOR, Role.OPERATOR)):
        q = q.where(Brief.merchant_id.in_(select(Merchant.id).where(Merchant.owner_id == user.id)))
        if status:
            q = q.where(Brief.status == status)
    elif user.has_role(Role.OPERATOR):
        if status:
            q = q.where(Brief.status == status)
    else:
        q = q.where(Brief.status == BriefStatus.OPEN.value, Brief.deadline > utcnow())
    total = session.scalar(
        select(func.count()).select_from(q.with_only_columns(Brief.id).subquery())
    )
    rows = session.scalars(q.order_by(Brief.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total or 0)


def close_brief(*, session: Session, user: User, brief_id: int) -> Brief:
    """Stop taking applications; engagements already accepted carry on."""
    brief = get_brief(session=session, brief_id=brief_id, user=user)
    ensure_owner(merchant_owner_id(session, brief.merchant_id), user, what="brief")
    engaged = session.scalar(
        select(func.count()).where(
            BriefApplication.brief_id == brief.id,
            BriefApplication.status.in_([s.value for s in (*ENGAGED, ApplicationStatus.APPROVED)]),
        )
    )
    new_status = BriefStatus.CLOSED if engaged else BriefStatus.CANCELLED
    res = session.execute(
        update(Brief)
        .where(Brief.id == brief.id, Brief.status == BriefStatus.OPEN.value)
        .values(status=new_status.value)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The brief is not open.", code="brief_not_open")
    pending = session.execute(
        update(BriefApplication)
        .where(
            BriefApplication.brief_id == brief.id,
            BriefApplication.status == ApplicationStatus.APPLIED.value,
        )
        .values(status=ApplicationStatus.DECLINED.value, decided_at=utcnow())
        .returning(BriefApplication.id, BriefApplication.creator_id)
    ).all()
    for app_id, creator_id in pending:
        notify(
            session,
            user_id=creator_id,
            kind="application_declined",
            message=f"The brief “{brief.title}” closed before your application was chosen.",
            brief_id=brief.id,
            application_id=app_id,
        )
    session.refresh(brief)
    return brief


# ---------------------------------------------------------------- applications


def _application(session: Session, application_id: int) -> tuple[BriefApplication, Brief]:
    row = session.execute(
        select(BriefApplication, Brief)
        .join(Brief, Brief.id == BriefApplication.brief_id)
        .where(BriefApplication.id == application_id)
    ).first()
    if row is None:
        raise NotFound("No such application.")
    return row[0], row[1]


def get_application(*, session: Session, user: User, application_id: int) -> BriefApplication:
    """An application, to its creator, the brief's merchant and operators."""
    app, brief = _application(session, application_id)
    if app.creator_id != user.id:
        ensure_owner(merchant_owner_id(session, brief.merchant_id), user, what="application")
    return app


def list_applications(
    *,
    session: Session,
    user: User,
    brief_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[BriefApplication], int]:
    """A brief's applications (for its merchant), or the creator's own."""
    q = select(BriefApplication)
    if brief_id is not None:
        brief = session.get(Brief, brief_id)
        if brief is None:
            raise NotFound("No such brief.")
        owner = merchant_owner_id(session, brief.merchant_id)
        q = q.where(BriefApplication.brief_id == brief_id)
        if owner != user.id and not user.has_role(Role.OPERATOR):
            q = q.where(BriefApplication.creator_id == user.id)
    elif not user.has_role(Role.OPERATOR) or user.has_role(Role.CREATOR):
        q = q.where(BriefApplication.creator_id == user.id)
    if status:
        q = q.where(BriefApplication.status == status)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    rows = session.scalars(q.order_by(BriefApplication.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total or 0)


def apply(*, session: Session, user: User, brief_id: int, pitch: str) -> BriefApplication:
    """A creator applies to an open brief with a pitch."""
    brief = session.get(Brief, brief_id)
    if brief is None or brief.status != BriefStatus.OPEN or brief.deadline <= utcnow():
        raise NotFound("No such open brief.")
    app = BriefApplication(
        brief_id=brief.id, creator_id=user.id, pitch=pitch, status=ApplicationStatus.APPLIED.value
    )
    try:
        with session.begin_nested():
            session.add(app)
    except IntegrityError:
        raise Conflict("You already applied to this brief.", code="already_applied") from None
    owner = merchant_owner_id(session, brief.merchant_id)
    if owner is not None:
        notify(
            session,
            user_id=owner,
            kind="application_received",
            message=f"{user.display_name} applied to “{brief.title}”.",
            brief_id=brief.id,
            application_id=app.id,
        )
    return app


def _transition(
    session: Session,
    app: BriefApplication,
    *,
    from_: Iterable[ApplicationStatus],
    to: ApplicationStatus,
    **values: Any,
) -> None:
    """Move ``app`` to ``to`` if it is still in one of ``from_`` (else 409)."""
    allowed = [s.value for s in from_]
    res = session.execute(
        update(BriefApplication)
        .where(BriefApplication.id == app.id, BriefApplication.status.in_(allowed))
        .values(status=to.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(
            select(BriefApplication.status).where(BriefApplication.id == app.id)
        )
        raise Conflict(
            f"The application is {current}; it cannot become {to.value}.",
            code="invalid_transition",
            details={"status": current, "allowed_from": allowed, "to": to.value},
        )
    session.refresh(app)


def _as_merchant(
    session: Session, user: User, application_id: int
) -> tuple[BriefApplication, Brief]:
    app, brief = _application(session, application_id)
    ensure_owner(
        merchant_owner_id(session, brief.merchant_id), user, operator_may=False, what="application"
    )
    return app, brief


def _as_creator(
    session: Session, user: User, application_id: int
) -> tuple[BriefApplication, Brief]:
    app, brief = _application(session, application_id)
    ensure_owner(app.creator_id, user, operator_may=False, what="application")
    return app, brief


def withdraw(*, session: Session, user: User, application_id: int) -> BriefApplication:
    """The creator withdraws an application that was not yet accepted."""
    app, brief = _as_creator(session, user, application_id)
    _transition(session, app, from_=[ApplicationStatus.APPLIED], to=ApplicationStatus.WITHDRAWN)
    owner = merchant_owner_id(session, brief.merchant_id)
    if owner is not None:
        notify(
            session,
            user_id=owner,
            kind="application_withdrawn",
            message=f"A creator withdrew their application to “{brief.title}”.",
            brief_id=brief.id,
            application_id=app.id,
        )
    return app


def accept(*, session: Session, user: User, application_id: int) -> BriefApplication:
    """Accept a creator: the fixed fee moves from the merchant's balance into escrow."""
    app, brief = _as_merchant(session, user, application_id)
    if brief.status != BriefStatus.OPEN or brief.deadline <= utcnow():
        raise Conflict("The brief is no longer open.", code="brief_not_open")
    fee = brief.fixed_fee_minor
    if fee:
        committed = session.execute(
            update(Brief)
            .where(
                Brief.id == brief.id,
                Brief.status == BriefStatus.OPEN.value,
                Brief.committed_minor + fee <= Brief.budget_minor,
            )
            .values(committed_minor=Brief.committed_minor + fee)
            .execution_options(synchronize_session=False)
        )
        if committed.rowcount != 1:  # type: ignore[attr-defined]
            raise Unprocessable(
                "The brief's budget is fully committed.",
                code="budget_exhausted",
                details={"budget_minor": brief.budget_minor, "fee_minor": fee},
            )
    _transition(
        session,
        app,
        from_=[ApplicationStatus.APPLIED],
        to=ApplicationStatus.ACCEPTED,
        fee_minor=fee,
        decided_at=utcnow(),
    )
    if fee:
        ref = escrow.hold_fee(
            session,
            application_id=app.id,
            merchant_id=brief.merchant_id,
            amount_minor=fee,
            currency=brief.currency,
        )
        app.escrow_ref = ref
    notify(
        session,
        user_id=app.creator_id,
        kind="application_accepted",
        message=f"You are in: “{brief.title}”. Deliver by {brief.deadline:%Y-%m-%d %H:%M} UTC.",
        brief_id=brief.id,
        application_id=app.id,
        data={"fee_minor": fee, "currency": brief.currency},
    )
    session.flush()
    return app


def decline(*, session: Session, user: User, application_id: int) -> BriefApplication:
    """Decline an application."""
    app, brief = _as_merchant(session, user, application_id)
    _transition(
        session,
        app,
        from_=[ApplicationStatus.APPLIED],
        to=ApplicationStatus.DECLINED,
        decided_at=utcnow(),
    )
    notify(
        session,
        user_id=app.creator_id,
        kind="application_declined",
        message=f"Your application to “{brief.title}” was declined.",
        brief_id=brief.id,
        application_id=app.id,
    )
    return app


def deliver(
    *,
    session: Session,
    user: User,
    application_id: int,
    post_id: int | None,
    live_room_id: int | None,
) -> BriefApplication:
    """The creator links the published post or the live session that fulfils the brief."""
    app, brief = _as_creator(session, user, application_id)
    if brief.deliverable == Deliverable.POST:
        if post_id is None or live_room_id is not None:
            raise Unprocessable(
                "This brief asks for a post.",
                code="wrong_deliverable",
                details=[{"field": "body.post_id", "message": "required for a post brief"}],
            )
        post = session.get(Post, post_id)
        if post is None or post.author_id != user.id:
            raise NotFound("No such post.")
        if post.status != PostStatus.PUBLISHED:
            raise Unprocessable("Publish the post first.", code="post_not_published")
        if brief.post_type and post.type != brief.post_type:
            raise Unprocessable(
                f"This brief asks for a {brief.post_type} post.",
                code="wrong_post_type",
                details={"wanted": brief.post_type, "got": post.type},
            )
    else:
        if live_room_id is None or post_id is not None:
            raise Unprocessable(
                "This brief asks for a live session.",
                code="wrong_deliverable",
                details=[{"field": "body.live_room_id", "message": "required for a live brief"}],
            )
        room = session.get(LiveRoom, live_room_id)
        if room is None or room.creator_id != user.id:
            raise NotFound("No such live room.")
        if room.started_at is None:
            raise Unprocessable(
                "The live session has not taken place yet.", code="live_not_started"
            )
    if utcnow() > brief.deadline:
        raise Conflict("The deadline has passed.", code="deadline_passed")
    _transition(
        session,
        app,
        from_=[ApplicationStatus.ACCEPTED],
        to=ApplicationStatus.DELIVERED,
        post_id=post_id,
        live_room_id=live_room_id,
        delivered_at=utcnow(),
    )
    owner = merchant_owner_id(session, brief.merchant_id)
    if owner is not None:
        notify(
            session,
            user_id=owner,
            kind="delivered",
            message=f"{user.display_name} delivered for “{brief.title}”: approve or dispute.",
            brief_id=brief.id,
            application_id=app.id,
            data={"post_id": post_id, "live_room_id": live_room_id},
        )
    return app


def _settle(session: Session, app: BriefApplication, brief: Brief, *, to_creator: bool) -> None:
    if not app.fee_minor:
        return
    if to_creator:
        escrow.release_fee(
            session,
            application_id=app.id,
            merchant_id=brief.merchant_id,
            creator_id=app.creator_id,
            amount_minor=app.fee_minor,
            currency=brief.currency,
        )
    else:
        escrow.return_fee(
            session,
            application_id=app.id,
            merchant_id=brief.merchant_id,
            amount_minor=app.fee_minor,
            currency=brief.currency,
        )
        # The fee no longer counts against the budget.
        session.execute(
            update(Brief)
            .where(Brief.id == brief.id)
            .values(committed_minor=Brief.committed_minor - app.fee_minor)
            .execution_options(synchronize_session=False)
        )


def approve(*, session: Session, user: User, application_id: int) -> BriefApplication:
    """The merchant approves the delivery; the escrowed fee goes to the creator."""
    app, brief = _as_merchant(session, user, application_id)
    _transition(
        session,
        app,
        from_=[ApplicationStatus.DELIVERED],
        to=ApplicationStatus.APPROVED,
        closed_at=utcnow(),
    )
    _settle(session, app, brief, to_creator=True)
    notify(
        session,
        user_id=app.creator_id,
        kind="approved",
        message=f"Your delivery for “{brief.title}” was approved; the fee is in your balance.",
        brief_id=brief.id,
        application_id=app.id,
        data={"fee_minor": app.fee_minor, "currency": brief.currency},
    )
    return app


def dispute(*, session: Session, user: User, application_id: int, reason: str) -> BriefApplication:
    """The merchant disputes the delivery; the fee stays in escrow until an operator decides."""
    app, brief = _as_merchant(session, user, application_id)
    _transition(
        session,
        app,
        from_=[ApplicationStatus.DELIVERED],
        to=ApplicationStatus.DISPUTED,
        dispute_reason=reason,
    )
    notify(
        session,
        user_id=app.creator_id,
        kind="disputed",
        message=f"The merchant disputed your delivery for “{brief.title}”: {reason}",
        brief_id=brief.id,
        application_id=app.id,
    )
    return app


def resolve(
    *, session: Session, user: User, application_id: int, in_favour_of: str, note: str
) -> BriefApplication:
    """An operator decides a dispute: the fee goes to the creator or back to the merchant."""
    app, brief = _application(session, application_id)
    _transition(
        session,
        app,
        from_=[ApplicationStatus.DISPUTED],
        to=ApplicationStatus.RESOLVED,
        resolution=in_favour_of,
        resolution_note=note,
        resolved_by_id=user.id,
        closed_at=utcnow(),
    )
    _settle(session, app, brief, to_creator=in_favour_of == "creator")
    owner = merchant_owner_id(session, brief.merchant_id)
    outcome = "released to the creator" if in_favour_of == "creator" else "returned to the merchant"
    for uid in (app.creator_id, owner):
        if uid is not None:
            notify(
                session,
                user_id=uid,
                kind="dispute_resolved",
                message=f"The dispute on “{brief.title}” was decided: the fee is {outcome}. {note}",
                brief_id=brief.id,
                application_id=app.id,
                data={"in_favour_of": in_favour_of},
            )
    return app


# ---------------------------------------------------------------- deadlines


def expire_overdue(
    *, session: Session, now: datetime | None = None, batch: int = 200
) -> dict[str, int]:
    """Close briefs past their deadline, expire what was not delivered (escrow back to the
    merchant) and auto-approve deliveries left unreviewed past the review window."""
    now = now or utcnow()
    counts = {"briefs_closed": 0, "expired": 0, "auto_approved": 0}
    closed = session.execute(
        update(Brief)
        .where(Brief.status == BriefStatus.OPEN.value, Brief.deadline <= now)
        .values(status=BriefStatus.CLOSED.value)
        .execution_options(synchronize_session=False)
    )
    counts["briefs_closed"] = int(closed.rowcount)  # type: ignore[attr-defined]
    overdue = session.execute(
        select(BriefApplication, Brief)
        .join(Brief, Brief.id == BriefApplication.brief_id)
        .where(
            Brief.deadline <= now,
            BriefApplication.status.in_(
                [ApplicationStatus.APPLIED.value, ApplicationStatus.ACCEPTED.value]
            ),
        )
        .order_by(BriefApplication.id)
        .limit(batch)
    ).all()
    for app, brief in overdue:
        was = app.status
        try:
            _transition(
                session,
                app,
                from_=[ApplicationStatus(was)],
                to=ApplicationStatus.EXPIRED,
                closed_at=now,
            )
        except Conflict:  # another worker got there first
            continue
        counts["expired"] += 1
        owner = merchant_owner_id(session, brief.merchant_id)
        if was == ApplicationStatus.ACCEPTED:
            _settle(session, app, brief, to_creator=False)
            msg = f"“{brief.title}” passed its deadline undelivered; the fee went back."
            for uid in (app.creator_id, owner):
                if uid is not None:
                    notify(
                        session,
                        user_id=uid,
                        kind="expired",
                        message=msg,
                        brief_id=brief.id,
                        application_id=app.id,
                    )
        else:
            notify(
                session,
                user_id=app.creator_id,
                kind="expired",
                message=f"“{brief.title}” passed its deadline before your application was chosen.",
                brief_id=brief.id,
                application_id=app.id,
            )
    unreviewed = session.execute(
        select(BriefApplication, Brief)
        .join(Brief, Brief.id == BriefApplication.brief_id)
        .where(
            Brief.deadline <= now - REVIEW_WINDOW,
            BriefApplication.status == ApplicationStatus.DELIVERED.value,
        )
        .order_by(BriefApplication.id)
        .limit(batch)
    ).all()
    for app, brief in unreviewed:
        try:
            _transition(
                session,
                app,
                from_=[ApplicationStatus.DELIVERED],
                to=ApplicationStatus.APPROVED,
                closed_at=now,
            )
        except Conflict:
            continue
        _settle(session, app, brief, to_creator=True)
        counts["auto_approved"] += 1
        owner = merchant_owner_id(session, brief.merchant_id)
        for uid in (app.creator_id, owner):
            if uid is not None:
                notify(
                    session,
                    user_id=uid,
                    kind="auto_approved",
                    message=f"The delivery for “{brief.title}” was not reviewed in time: approved.",
                    brief_id=brief.id,
                    application_id=app.id,
                )
    return counts


def ensure_brief_owner(*, session: Session, brief: Brief, user: User) -> None:
    """404 unless ``user`` owns the brief's shop (or is an operator)."""
    ensure_owner(merchant_owner_id(session, brief.merchant_id), user, what="brief")


def top_up(
    *, session: Session, merchant_id: int, amount_minor: int, currency: str, reference: str
) -> None:
    """Record a merchant's payment into their marketing balance."""
    if session.get(Merchant, merchant_id) is None:
        raise NotFound("No such merchant.")
    escrow.top_up(
        session,
        merchant_id=merchant_id,
        amount_minor=amount_minor,
        currency=currency,
        reference=reference,
    )


def balance(*, session: Session, user: User, merchant_id: int, currency: str) -> dict[str, Any]:
    """A merchant's marketing balance and escrowed fees (owner or operator)."""
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    ensure_owner(merchant.owner_id, user, what="merchant")
    return {
        "merchant_id": merchant_id,
        "currency": currency,
        "available_minor": escrow.merchant_balance(
            session, merchant_id=merchant_id, currency=currency
        ),
        "escrowed_minor": escrow.escrowed(session, merchant_id=merchant_id, currency=currency),
    }
