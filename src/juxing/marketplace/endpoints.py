"""HTTP endpoints of the marketplace: briefs, applications, matching, notifications."""

from __future__ import annotations

from fastapi import APIRouter, Query

from juxing.kit.auth import CreatorUser, CurrentUser, MerchantUser, OperatorUser
from juxing.kit.db import DbSession
from juxing.kit.schemas import Limit, Offset, Page
from juxing.marketplace import recommend, service
from juxing.marketplace.schemas import (
    ApplicationCreate,
    ApplicationOut,
    BalanceOut,
    BriefCreate,
    BriefItemOut,
    BriefMatchOut,
    BriefOut,
    CreatorMatchOut,
    DeliveryIn,
    DisputeIn,
    MarkRead,
    NotificationOut,
    ResolveIn,
    TopUpIn,
)
from juxing.models.marketplace import Brief, BriefApplication, MarketplaceNotification

router = APIRouter(prefix="/marketplace", tags=["marketplace"])


def brief_out(b: Brief) -> BriefOut:
    return BriefOut(
        id=b.id,
        merchant_id=b.merchant_id,
        title=b.title,
        description=b.description,
        deliverable=b.deliverable,
        post_type=b.post_type,
        commission_rate_bp=b.commission_rate_bp,
        fixed_fee_minor=b.fixed_fee_minor,
        budget_minor=b.budget_minor,
        committed_minor=b.committed_minor,
        currency=b.currency,
        deadline=b.deadline,
        wanted_segments=list(b.wanted_segments or []),
        status=b.status,
        items=[BriefItemOut(product_id=i.product_id, deal_item_id=i.deal_item_id) for i in b.items],
        created_at=b.created_at,
    )


def application_out(a: BriefApplication) -> ApplicationOut:
    return ApplicationOut.model_validate(a, from_attributes=True)


def notification_out(n: MarketplaceNotification) -> NotificationOut:
    return NotificationOut.model_validate(n, from_attributes=True)


@router.post("/briefs", status_code=201, response_model=BriefOut)
def create_brief(body: BriefCreate, user: MerchantUser, session: DbSession) -> BriefOut:
    """Post a promotion brief (merchant)."""
    brief = service.create_brief(
        session=session,
        user=user,
        merchant_id=body.merchant_id,
        title=body.title,
        description=body.description,
        deliverable=body.deliverable,
        post_type=body.post_type,
        commission_rate_bp=body.commission_rate_bp,
        fixed_fee_minor=body.fixed_fee_minor,
        budget_minor=body.budget_minor,
        currency=body.currency,
        deadline=body.deadline,
        wanted_segments=body.wanted_segments,
        items=[service.ItemSpec(i.product_id, i.deal_item_id) for i in body.items],
    )
    return brief_out(brief)


@router.get("/briefs", response_model=Page[BriefOut])
def list_briefs(
    user: CurrentUser,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    mine: bool = False,
    status: str | None = Query(default=None, max_length=12),
) -> Page[BriefOut]:
    """Open briefs (creators), your own (merchants, or ``mine=true``), all (operators)."""
    rows, total = service.list_briefs(
        session=session, user=user, mine=mine, status=status, limit=limit, offset=offset
    )
    return Page(items=[brief_out(b) for b in rows], total=total, limit=limit, offset=offset)


@router.get("/briefs/recommended", response_model=list[BriefMatchOut])
def recommended_briefs(
    user: CreatorUser, session: DbSession, limit: int = Query(default=10, ge=1, le=50)
) -> list[BriefMatchOut]:
    """Open briefs that fit the creator's audience best, each with its reasons."""
    ranked = recommend.briefs_for_creator(session, user, limit=limit)
    briefs = {
        b.id: b
        for b in service.list_briefs(session=session, user=user, limit=200)[0]
        if b.id in {r[0] for r in ranked}
    }
    return [
        BriefMatchOut(brief=brief_out(briefs[bid]), score=score, reasons=reasons)
        for bid, score, reasons in ranked
        if bid in briefs
    ]


@router.get("/briefs/{brief_id}", response_model=BriefOut)
def get_brief(brief_id: int, user: CurrentUser, session: DbSession) -> BriefOut:
    return brief_out(service.get_brief(session=session, brief_id=brief_id, user=user))


@router.post("/briefs/{brief_id}/close", response_model=BriefOut)
def close_brief(brief_id: int, user: MerchantUser, session: DbSession) -> BriefOut:
    """Stop taking applications; pending ones are declined."""
    return brief_out(service.close_brief(session=session, user=user, brief_id=brief_id))


@router.get("/briefs/{brief_id}/recommended-creators", response_model=list[CreatorMatchOut])
def recommended_creators(
    brief_id: int,
    user: CurrentUser,
    session: DbSession,
    limit: int = Query(default=10, ge=1, le=50),
) -> list[CreatorMatchOut]:
    """Creators whose audience fits the brief, best first, each with its reasons."""
    brief = service.get_brief(session=session, brief_id=brief_id, user=user)
    service.ensure_brief_owner(session=session, brief=brief, user=user)
    return [
        CreatorMatchOut(
            creator_id=m.creator_id,
            display_name=name,
            score=m.score,
            audience_fit=m.audience_fit,
            conversion=m.conversion,
            reasons=m.reasons,
        )
        for m, name in recommend.creators_for_brief(session, brief, limit=limit)
    ]


@router.post("/briefs/{brief_id}/applications", status_code=201, response_model=ApplicationOut)
def apply(
    brief_id: int, body: ApplicationCreate, user: CreatorUser, session: DbSession
) -> ApplicationOut:
    """Apply to an open brief with a pitch (creator)."""
    return application_out(
        service.apply(session=session, user=user, brief_id=brief_id, pitch=body.pitch)
    )


@router.get("/applications", response_model=Page[ApplicationOut])
def list_applications(
    user: CurrentUser,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    brief_id: int | None = Query(default=None, ge=1),
    status: str | None = Query(default=None, max_length=12),
) -> Page[ApplicationOut]:
    """A brief's applications (its merchant) or your own (creator)."""
    rows, total = service.list_applications(
        session=session, user=user, brief_id=brief_id, status=status, limit=limit, offset=offset
    )
    return Page(items=[application_out(a) for a in rows], total=total, limit=limit, offset=offset)


@router.get("/applications/{application_id}", response_model=ApplicationOut)
def get_application(application_id: int, user: CurrentUser, session: DbSession) -> ApplicationOut:
    return application_out(
        service.get_application(session=session, user=user, application_id=application_id)
    )


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationOut)
def withdraw(application_id: int, user: CreatorUser, session: DbSession) -> ApplicationOut:
    return application_out(
        service.withdraw(session=session, user=user, application_id=application_id)
    )


@router.post("/applications/{application_id}/accept", response_model=ApplicationOut)
def accept(application_id: int, user: MerchantUser, session: DbSession) -> ApplicationOut:
    """Accept a creator; the brief's fixed fee moves from your balance into escrow."""
    return application_out(
        service.accept(session=session, user=user, application_id=application_id)
    )


@router.post("/applications/{application_id}/decline", response_model=ApplicationOut)
def decline(application_id: int, user: MerchantUser, session: DbSession) -> ApplicationOut:
    return application_out(
        service.decline(session=session, user=user, application_id=application_id)
    )


@router.post("/applications/{application_id}/deliver", response_model=ApplicationOut)
def deliver(
    application_id: int, body: DeliveryIn, user: CreatorUser, session: DbSession
) -> ApplicationOut:
    """Link the published post or the live session that fulfils the brief (creator)."""
    return application_out(
        service.deliver(
            session=session,
            user=user,
            application_id=application_id,
            post_id=body.post_id,
            live_room_id=body.live_room_id,
        )
    )


@router.post("/applications/{application_id}/approve", response_model=ApplicationOut)
def approve(application_id: int, user: MerchantUser, session: DbSession) -> ApplicationOut:
    """Approve the delivery; the escrowed fee goes to the creator."""
    return application_out(
        service.approve(session=session, user=user, application_id=application_id)
    )


@router.post("/applications/{application_id}/dispute", response_model=ApplicationOut)
def dispute(
    application_id: int, body: DisputeIn, user: MerchantUser, session: DbSession
) -> ApplicationOut:
    """Dispute the delivery; an operator decides where the escrowed fee goes."""
    return application_out(
        service.dispute(
            session=session, user=user, application_id=application_id, reason=body.reason
        )
    )


@router.post("/applications/{application_id}/resolve", response_model=ApplicationOut)
def resolve(
    application_id: int, body: ResolveIn, user: OperatorUser, session: DbSession
) -> ApplicationOut:
    """Decide a dispute (operator)."""
    return application_out(
        service.resolve(
            session=session,
            user=user,
            application_id=application_id,
            in_favour_of=body.in_favour_of,
            note=body.note,
        )
    )


@router.get("/notifications", response_model=Page[NotificationOut])
def notifications(
    user: CurrentUser,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    unread: bool = False,
) -> Page[NotificationOut]:
    """Your marketplace notifications, newest first."""
    rows, total = service.list_notifications(
        session=session, user=user, unread_only=unread, limit=limit, offset=offset
    )
    return Page(items=[notification_out(n) for n in rows], total=total, limit=limit, offset=offset)


@router.post("/notifications/read")
def mark_read(body: MarkRead, user: CurrentUser, session: DbSession) -> dict[str, int]:
    return {
        "marked": service.mark_notifications_read(
            session=session, user=user, up_to_id=body.up_to_id
        )
    }


@router.post("/merchants/{merchant_id}/balance/top-ups", response_model=BalanceOut)
def top_up(merchant_id: int, body: TopUpIn, user: OperatorUser, session: DbSession) -> BalanceOut:
    """Record money a merchant paid in for brief fees (operator; idempotent by reference)."""
    service.top_up(
        session=session,
        merchant_id=merchant_id,
        amount_minor=body.amount_minor,
        currency=body.currency,
        reference=body.reference,
    )
    return BalanceOut(
        **service.balance(
            session=session, user=user, merchant_id=merchant_id, currency=body.currency
        )
    )


@router.get("/merchants/{merchant_id}/balance", response_model=BalanceOut)
def balance(
    merchant_id: int,
    user: CurrentUser,
    session: DbSession,
    currency: str = Query(default="CNY", pattern=r"^[A-Z]{3}$"),
) -> BalanceOut:
    """A merchant's marketing balance and the fees held in escrow (owner or operator)."""
    return BalanceOut(
        **service.balance(session=session, user=user, merchant_id=merchant_id, currency=currency)
    )
