"""Festivals, campaigns and deal items (聚划算): sign-up, review, the time-driven lifecycle,
and the live card state other domains show.

Buying lives in ``deals.orders``, coupons in ``deals.coupons``, payments in
``deals.payments``; this module re-exports nothing from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from juxing.catalog import service as catalog
from juxing.deals.stock import rowcount
from juxing.kit.auth import ensure_owner
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import ensure_utc, utcnow
from juxing.models.accounts import User
from juxing.models.catalog import Merchant, Product, ProductStatus, Sku, SkuStatus
from juxing.models.deals import (
    Campaign,
    CampaignStatus,
    CampaignTransition,
    DealItem,
    Festival,
)

S = CampaignStatus
BUYABLE_CAMPAIGN = (S.SCHEDULED.value, S.LIVE.value)


# --- festivals ----------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "festival"


def create_festival(
    *,
    session: Session,
    user: User | None,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    theme: str = "",
    name_zh: str = "",
    description: str = "",
    slug: str | None = None,
) -> Festival:
    """Create a festival (operators), e.g. the Star Festival (聚星节)."""
    starts_at, ends_at = ensure_utc(starts_at), ensure_utc(ends_at)
    if ends_at <= starts_at:
        raise Unprocessable(
            "A festival must end after it starts.",
            code="festival_window_invalid",
            details={"field": "body.ends_at"},
        )
    slug = slug or _slug(name)
    if session.scalar(select(Festival.id).where(Festival.slug == slug)) is not None:
        raise Conflict(
            "A festival with this slug exists.",
            code="festival_slug_taken",
            details={"field": "body.slug"},
        )
    festival = Festival(
        name=name,
        name_zh=name_zh,
        slug=slug,
        theme=theme,
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by_id=user.id if user else None,
    )
    session.add(festival)
    session.flush()
    return festival


def get_festival(*, session: Session, festival_id: int | str) -> Festival:
    """A festival by id or slug, or 404."""
    if isinstance(festival_id, int) or str(festival_id).isdigit():
        festival = session.get(Festival, int(festival_id))
    else:
        festival = session.scalar(select(Festival).where(Festival.slug == festival_id))
    if festival is None:
        raise NotFound("No such festival.")
    return festival


def list_festivals(*, session: Session, current_only: bool = False) -> list[Festival]:
    """Festivals, newest first; ``current_only`` keeps those not yet over."""
    query = select(Festival).order_by(Festival.starts_at.desc())
    if current_only:
        query = query.where(Festival.ends_at > utcnow())
    return list(session.scalars(query).all())


def update_festival(*, session: Session, festival_id: int, **changes: Any) -> Festival:
    """Change a festival's name, theme, description or window (operators)."""
    festival = get_festival(session=session, festival_id=festival_id)
    for name, value in changes.items():
        setattr(festival, name, ensure_utc(value) if isinstance(value, datetime) else value)
    if festival.ends_at <= festival.starts_at:
        raise Unprocessable(
            "A festival must end after it starts.",
            code="festival_window_invalid",
            details={"field": "body.ends_at"},
        )
    session.flush()
    return festival


# --- campaigns ----------------------------------------------------------------------------


def _transition(
    session: Session,
    campaign: Campaign,
    to: CampaignStatus,
    *,
    actor: User | None = None,
    reason: str | None = None,
    allowed_from: Iterable[CampaignStatus],
) -> None:
    """Move a campaign to ``to`` if it is in one of ``allowed_from`` (conditionally, so two
    concurrent reviewers cannot both act), recording the step."""
    allowed = [s.value for s in allowed_from]
    done = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status.in_(allowed))
        .values(status=to.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        raise Conflict(
            f"The campaign is {campaign.status}; it cannot become {to.value}.",
            code="campaign_wrong_status",
            details={"status": campaign.status, "allowed_from": allowed},
        )
    session.add(
        CampaignTransition(
            campaign_id=campaign.id,
            from_status=campaign.status,
            to_status=to.value,
            actor_id=actor.id if actor else None,
            reason=reason,
            at=utcnow(),
        )
    )
    campaign.status = to.value
    session.flush()


def create_campaign(
    *, session: Session, user: User, festival_id: int, merchant_id: int, title: str
) -> Campaign:
    """A merchant starts a sign-up for a festival (status draft)."""
    catalog.owned_merchant(session=session, merchant_id=merchant_id, user=user)
    festival = get_festival(session=session, festival_id=festival_id)
    if festival.ends_at <= utcnow():
        raise Unprocessable(
            "The festival is over.", code="festival_over", details={"field": "body.festival_id"}
        )
    campaign = Campaign(
        festival_id=festival.id, merchant_id=merchant_id, title=title, status=S.DRAFT.value
    )
    session.add(campaign)
    session.flush()
    session.add(
        CampaignTransition(
            campaign_id=campaign.id,
            from_status=None,
            to_status=S.DRAFT.value,
            actor_id=user.id,
            at=utcnow(),
        )
    )
    session.flush()
    return campaign


def get_campaign(*, session: Session, campaign_id: int, with_items: bool = True) -> Campaign:
    """A campaign (with its deal items), or 404."""
    query = select(Campaign).where(Campaign.id == campaign_id)
    if with_items:
        query = query.options(selectinload(Campaign.items))
    campaign = session.scalar(query.execution_options(populate_existing=True))
    if campaign is None:
        raise NotFound("No such campaign.")
    return campaign


def owned_campaign(*, session: Session, campaign_id: int, user: User) -> Campaign:
    """A campaign of a merchant the user owns (operators see all), else 404."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    merchant = session.get(Merchant, campaign.merchant_id)
    ensure_owner(merchant.owner_id if merchant else None, user, what="campaign")
    return campaign


def list_campaigns(
    *,
    session: Session,
    merchant_ids: list[int] | None = None,
    festival_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Campaign], int]:
    """Campaigns, filtered."""
    query = select(Campaign)
    if merchant_ids is not None:
        query = query.where(Campaign.merchant_id.in_(merchant_ids))
    if festival_id is not None:
        query = query.where(Campaign.festival_id == festival_id)
    if status is not None:
        query = query.where(Campaign.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Campaign.items))
        .order_by(Campaign.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def transitions(*, session: Session, campaign_id: int) -> list[CampaignTransition]:
    """A campaign's recorded lifecycle."""
    return list(
        session.scalars(
            select(CampaignTransition)
            .where(CampaignTransition.campaign_id == campaign_id)
            .order_by(CampaignTransition.id)
        ).all()
    )


def add_deal_item(
    *,
    session: Session,
    user: User,
    campaign_id: int,
    sku_id: int,
    deal_price_minor: int,
    deal_stock: int,
    per_user_limit: int,
    starts_at: datetime,
    ends_at: datetime,
    group_size: int | None = None,
    group_window_s: int | None = None,
    commission_rate_bp: int | None = None,
    restock_on_refund: bool = True,
) -> DealItem:
    """Add a SKU on deal to a draft campaign, checking every rule with its reason."""
    campaign = owned_campaign(session=session, campaign_id=campaign_id, user=user)
    if campaign.status != S.DRAFT.value:
        raise Conflict(
            "Only a draft campaign can be changed.",
            code="campaign_not_draft",
            details={"status": campaign.status},
        )
    row = session.execute(
        select(Sku, Product).join(Product, Product.id == Sku.product_id).where(Sku.id == sku_id)
    ).first()
    if row is None or row[1].merchant_id != campaign.merchant_id:
        raise Unprocessable(
            "No such SKU in this merchant's catalog.",
            code="sku_not_found",
            details={"field": "body.sku_id"},
        )
    sku, product = row
    festival = get_festival(session=session, festival_id=campaign.festival_id)
    starts_at, ends_at = ensure_utc(starts_at), ensure_utc(ends_at)
    problems = deal_rule_violations(
        sku=sku,
        festival=festival,
        deal_price_minor=deal_price_minor,
        deal_stock=deal_stock,
        starts_at=starts_at,
        ends_at=ends_at,
        already_committed=sum(i.deal_stock for i in campaign.items if i.sku_id == sku_id),
    )
    if (group_size is None) != (group_window_s is None):
        problems.append(
            {
                "field": "body.group_window_s",
                "rule": "group_incomplete",
                "message": "A group deal needs both group_size and group_window_s.",
            }
        )
    if problems:
        raise Unprocessable(problems[0]["message"], code=problems[0]["rule"], details=problems)
    if any(i.sku_id == sku_id for i in campaign.items):
        raise Conflict(
            "This SKU is already in the campaign.",
            code="sku_already_in_campaign",
            details={"field": "body.sku_id"},
        )
    item = DealItem(
        campaign_id=campaign.id,
        sku_id=sku.id,
        product_id=product.id,
        merchant_id=campaign.merchant_id,
        deal_price_minor=deal_price_minor,
        currency=sku.currency,
        deal_stock=deal_stock,
        available=deal_stock,
        reserved=0,
        sold=0,
        per_user_limit=per_user_limit,
        starts_at=starts_at,
        ends_at=ends_at,
        group_size=group_size,
        group_window_s=group_window_s,
        commission_rate_bp=commission_rate_bp,
        restock_on_refund=restock_on_refund,
    )
    session.add(item)
    session.flush()
    _refresh_window(session, campaign)
    return item


def deal_rule_violations(
    *,
    sku: Sku,
    festival: Festival,
    deal_price_minor: int,
    deal_stock: int,
    starts_at: datetime,
    ends_at: datetime,
    already_committed: int = 0,
) -> list[dict[str, Any]]:
    """Every rule a proposed deal item breaks, with the reason (empty when it is fine)."""
    problems: list[dict[str, Any]] = []
    if deal_price_minor >= sku.list_price_minor:
        problems.append(
            {
                "field": "body.deal_price_minor",
                "rule": "deal_price_not_below_list",
                "message": f"The deal price must be below the list price ({sku.list_price_minor}).",
                "list_price_minor": sku.list_price_minor,
            }
        )
    if deal_stock > sku.stock - already_committed:
        problems.append(
            {
                "field": "body.deal_stock",
                "rule": "stock_not_available",
                "message": f"Only {sku.stock - already_committed} units of this SKU are in stock.",
                "sku_stock": sku.stock,
            }
        )
    if ends_at <= starts_at:
        problems.append(
            {
                "field": "body.ends_at",
                "rule": "deal_window_invalid",
                "message": "The deal must end after it starts.",
            }
        )
    if starts_at < festival.starts_at or ends_at > festival.ends_at:
        problems.append(
            {
                "field": "body.starts_at",
                "rule": "window_outside_festival",
                "message": "The deal window must lie within the festival "
                f"({festival.starts_at.isoformat()} to {festival.ends_at.isoformat()}).",
                "festival_starts_at": festival.starts_at.isoformat(),
                "festival_ends_at": festival.ends_at.isoformat(),
            }
        )
    if sku.status != "active":
        problems.append(
            {"field": "body.sku_id", "rule": "sku_inactive", "message": "The SKU is not active."}
        )
    return problems


def remove_deal_item(*, session: Session, user: User, deal_item_id: int) -> None:
    """Remove a deal item from a draft campaign."""
    item = session.get(DealItem, deal_item_id)
    if item is None:
        raise NotFound("No such deal item.")
    campaign = owned_campaign(session=session, campaign_id=item.campaign_id, user=user)
    if campaign.status != S.DRAFT.value:
        raise Conflict("Only a draft campaign can be changed.", code="campaign_not_draft")
    session.delete(item)
    session.flush()
    _refresh_window(session, get_campaign(session=session, campaign_id=campaign.id))


def _refresh_window(session: Session, campaign: Campaign) -> None:
    items = session.execute(
        select(func.min(DealItem.starts_at), func.max(DealItem.ends_at)).where(
            DealItem.campaign_id == campaign.id
        )
    ).one()
    campaign.starts_at, campaign.ends_at = items
    session.flush()


def submit_campaign(*, session: Session, user: User, campaign_id: int) -> Campaign:
    """Submit for review: the deal stock is taken out of each SKU's stock now."""
    campaign = owned_campaign(session=session, campaign_id=campaign_id, user=user)
    if not campaign.items:
        raise Unprocessable("Add at least one deal item first.", code="campaign_empty")
    if campaign.status == S.DRAFT.value:
        festival = get_festival(session=session, festival_id=campaign.festival_id)
        for item in campaign.items:
            sku = session.get(Sku, item.sku_id)
            assert sku is not None
            problems = deal_rule_violations(
                sku=sku,
                festival=festival,
                deal_price_minor=item.deal_price_minor,
                deal_stock=item.deal_stock,
                starts_at=item.starts_at,
                ends_at=item.ends_at,
            )
            if problems:
                raise Unprocessable(
                    problems[0]["message"],
                    code=problems[0]["rule"],
                    details={"deal_item_id": item.id, "problems": problems},
                )
    _transition(session, campaign, S.SUBMITTED, actor=user, allowed_from=[S.DRAFT])
    for item in campaign.items:
        taken = session.execute(
            update(Sku)
            .where(Sku.id == item.sku_id, Sku.stock >= item.deal_stock)
            .values(stock=Sku.stock - item.deal_stock)
            .execution_options(synchronize_session=False)
        )
        if rowcount(taken) != 1:
            raise Unprocessable(
                "The SKU no longer has the stock this deal needs.",
                code="stock_not_available",
                details={"deal_item_id": item.id, "field": "deal_stock"},
            )
    return get_campaign(session=session, campaign_id=campaign.id)


def _return_stock(session: Session, items: Iterable[DealItem], *, only_unsold: bool) -> None:
    for item in items:
        back = item.available if only_unsold else item.deal_stock
        if back > 0:
            session.execute(
                update(Sku)
                .where(Sku.id == item.sku_id)
                .values(stock=Sku.stock + back)
                .execution_options(synchronize_session=False)
            )


def approve_campaign(
    *,
    session: Session,
    user: User,
    campaign_id: int,
    stock_backend: str = "sql",
    now: datetime | None = None,
) -> Campaign:
    """An operator approves; the campaign is then scheduled (and goes live on time)."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    _transition(session, campaign, S.APPROVED, actor=user, allowed_from=[S.SUBMITTED])
    session.execute(
        update(DealItem)
        .where(DealItem.campaign_id == campaign.id)
        .values(stock_backend=stock_backend)
        .execution_options(synchronize_session=False)
    )
    _transition(
        session, campaign, S.SCHEDULED, actor=None, reason="approved", allowed_from=[S.APPROVED]
    )
    advance_campaign(session=session, campaign=campaign, now=now)
    return get_campaign(session=session, campaign_id=campaign.id)


def reject_campaign(*, session: Session, user: User, campaign_id: int, reason: str) -> Campaign:
    """An operator rejects with a reason; the deal stock goes back to the SKUs."""
    campaign = get_campaign(session=session, campaign_id=campaign_id)
    _transition(
        session, campaign, S.REJECTED, actor=user, reason=reason, allowed_from=[S.SUBMITTED]
    )
    campaign.reject_reason = reason
    _return_stock(session, campaign.items, only_unsold=False)
    session.flush()
    return get_campaign(session=session, campaign_id=campaign.id)


def revise_campaign(*, session: Session, user: User, campaign_id: int) -> Campaign:
    """A merchant takes a rejected campaign back to draft to fix it."""
    campaign = owned_campaign(session=session, campaign_id=campaign_id, user=user)
    _transition(session, campaign, S.DRAFT, actor=user, allowed_from=[S.REJECTED])
    return campaign


def advance_campaign(*, session: Session, campaign: Campaign, now: datetime | None = None) -> str:
    """Move one campaign along its time-driven lifecycle; returns its status."""
    now = now or utcnow()
    if campaign.status == S.SCHEDULED.value and campaign.starts_at and campaign.starts_at <= now:
        _transition(
            session, campaign, S.LIVE, reason="start time reached", allowed_from=[S.SCHEDULED]
        )
    if (
        campaign.status in (S.SCHEDULED.value, S.LIVE.value)
        and campaign.ends_at
        and campaign.ends_at <= now
    ):
        _transition(
            session,
            campaign,
            S.ENDED,
            reason="end time reached",
            allowed_from=[S.SCHEDULED, S.LIVE],
        )
    return campaign.status


def end_campaign_stock(*, session: Session, campaign: Campaign) -> None:
    """When a campaign has ended and nothing is reserved, its unsold units go back."""
    for item in campaign.items:
        if item.reserved == 0 and item.available > 0 and item.stock_backend == "sql":
            done = session.execute(
                update(DealItem)
                .where(
                    DealItem.id == item.id,
                    DealItem.available == item.available,
                    DealItem.reserved == 0,
                )
                .values(available=0, deal_stock=DealItem.deal_stock - item.available)
                .execution_options(synchronize_session=False)
            )
            if rowcount(done) == 1:
                session.execute(
                    update(Sku)
                    .where(Sku.id == item.sku_id)
                    .values(stock=Sku.stock + item.available)
                    .execution_options(synchronize_session=False)
                )


def advance_campaigns(*, session: Session, now: datetime | None = None) -> int:
    """Sweep: scheduled -> live -> ended for every campaign whose time has come."""
    now = now or utcnow()
    due = session.scalars(
        select(Campaign)
        .where(
            Campaign.status.in_([S.APPROVED.value, S.SCHEDULED.value, S.LIVE.value]),
            (Campaign.starts_at <= now) | (Campaign.ends_at <= now),
        )
        .options(selectinload(Campaign.items))
        .limit(200)
    ).all()
    moved = 0
    for campaign in due:
        before = campaign.status
        if campaign.status == S.APPROVED.value:
            _transition(session, campaign, S.SCHEDULED, allowed_from=[S.APPROVED])
        try:
            with session.begin_nested():
                advance_campaign(session=session, campaign=campaign, now=now)
        except Conflict:  # another worker moved it first
            continue
        if campaign.status == S.ENDED.value:
            end_campaign_stock(session=session, campaign=campaign)
        moved += campaign.status != before
    return moved


# --- deal items and live card state -------------------------------------------------------


def get_deal_item(*, session: Session, deal_item_id: int) -> DealItem:
    """A deal item, or 404."""
    item = session.get(DealItem, deal_item_id)
    if item is None:
        raise NotFound("No such deal item.")
    return item


def live_counters(item: DealItem, redis_client: redis.Redis | None) -> tuple[int, int, int]:
    """(available, reserved, sold) from the backend holding the live counters."""
    if item.stock_backend == "redis" and redis_client is not None:
        from juxing.deals.stock import redis_keys

        try:
            raw = redis_client.hmget(redis_keys(item.id)[0], "available", "reserved", "sold")
        except redis.RedisError:
            raw = [None]
        if raw[0] is not None:
            return int(raw[0]), int(raw[1] or 0), int(raw[2] or 0)
    return item.available, item.reserved, item.sold


def deal_state(
    *,
    starts_at: datetime,
    ends_at: datetime,
    campaign_status: str,
    available: int,
    now: datetime,
) -> str:
    """upcoming, live, sold_out, ended or not_on_sale."""
    if campaign_status not in (S.SCHEDULED.value, S.LIVE.value, S.ENDED.value):
        return "not_on_sale"
    if now >= ends_at or campaign_status == S.ENDED.value:
        return "ended"
    if now < starts_at:
        return "upcoming"
    return "live" if available > 0 else "sold_out"


# A SKU card whose best deal is one of these shows the regular product instead, when it sells.
NO_CURRENT_DEAL = frozenset({"ended", "not_on_sale"})


def card_states(
    *,
    session: Session,
    sku_ids: Iterable[int] = (),
    deal_item_ids: Iterable[int] = (),
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Live product-card state for other domains (feed, content, live rooms).

    Returns ``{"deal_items": {id: card}, "skus": {id: card}}``; a card has ``title``,
    ``list_price_minor``, ``deal_price_minor`` (None when not on deal), ``currency``,
    ``status`` (upcoming / live / sold_out / ended / on_sale / not_on_sale), ``starts_at``,
    ``ends_at`` (for a countdown), ``stock_left``, ``deal_item_id``, ``product_id``,
    ``sku_id``. A SKU's card shows its best current deal (live, else sold out, else
    upcoming); without one it is the regular product: ``on_sale`` at its list price when the
    product and the SKU are active and in stock, else ``not_on_sale`` (or the latest ended deal).
    """
    now = now or utcnow()
    sku_ids, deal_item_ids = list(set(sku_ids)), list(set(deal_item_ids))
    out: dict[str, dict[int, dict[str, Any]]] = {"deal_items": {}, "skus": {}}
    if not sku_ids and not deal_item_ids:
        return out
    cond = []
    if deal_item_ids:
        cond.append(DealItem.id.in_(deal_item_ids))
    if sku_ids:
        cond.append(DealItem.sku_id.in_(sku_ids))
    from sqlalchemy import or_

    rows = session.execute(
        select(DealItem, Campaign.status, Product.title, Sku.name, Sku.list_price_minor)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .join(Sku, Sku.id == DealItem.sku_id)
        .join(Product, Product.id == DealItem.product_id)
        .where(or_(*cond))
    ).all()
    rank = {"live": 0, "sold_out": 1, "upcoming": 2, "ended": 3, "not_on_sale": 4}
    for item, campaign_status, title, sku_name, list_price in rows:
        available, _reserved, _sold = live_counters(item, redis_client)
        status = deal_state(
            starts_at=item.starts_at,
            ends_at=item.ends_at,
            campaign_status=campaign_status,
            available=available,
            now=now,
        )
        card = {
            "deal_item_id": item.id,
            "product_id": item.product_id,
            "sku_id": item.sku_id,
            "title": f"{title} · {sku_name}" if sku_name else title,
            "list_price_minor": list_price,
            "deal_price_minor": item.deal_price_minor,
            "currency": item.currency,
            "status": status,
            "starts_at": item.starts_at,
            "ends_at": item.ends_at,
            "stock_left": max(available, 0),
            "deal_stock": item.deal_stock,
            "per_user_limit": item.per_user_limit,
            "group_size": item.group_size,
        }
        if item.id in deal_item_ids:
            out["deal_items"][item.id] = card
        if item.sku_id in sku_ids:
            best = out["skus"].get(item.sku_id)
            if best is None or (rank[status], -item.ends_at.timestamp()) < (
                rank[best["status"]],
                -best["ends_at"].timestamp(),
            ):
                out["skus"][item.sku_id] = card
    missing = [
        s for s in sku_ids if s not in out["skus"] or out["skus"][s]["status"] in NO_CURRENT_DEAL
    ]
    if missing:
        for sku, title, product_status in session.execute(
            select(Sku, Product.title, Product.status)
            .join(Product, Product.id == Sku.product_id)
            .where(Sku.id.in_(missing))
        ).all():
            regular = (
                product_status == ProductStatus.ACTIVE.value
                and sku.status == SkuStatus.ACTIVE.value
                and sku.stock > 0
            )
            if not regular and sku.id in out["skus"]:
                continue  # not sold regularly: the ended deal's card says more
            out["skus"][sku.id] = {
                "deal_item_id": None,
                "product_id": sku.product_id,
                "sku_id": sku.id,
                "title": f"{title} · {sku.name}",
                "list_price_minor": sku.list_price_minor,
                "deal_price_minor": None,
                "currency": sku.currency,
                "status": "on_sale" if regular else "not_on_sale",
                "starts_at": None,
                "ends_at": None,
                "stock_left": sku.stock,
                "deal_stock": None,
                "per_user_limit": None,
                "group_size": None,
            }
    return out


def festival_deals(
    *,
    session: Session,
    festival_id: int,
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
) -> list[dict[str, Any]]:
    """The deal cards of a festival's approved campaigns, live first."""
    ids = session.scalars(
        select(DealItem.id)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .where(
            Campaign.festival_id == festival_id,
            Campaign.status.in_([S.SCHEDULED.value, S.LIVE.value, S.ENDED.value]),
        )
    ).all()
    cards = card_states(session=session, deal_item_ids=ids, now=now, redis_client=redis_client)[
        "deal_items"
    ]
    order = {"live": 0, "upcoming": 1, "sold_out": 2, "ended": 3, "on_sale": 4, "not_on_sale": 5}
    return sorted(
        cards.values(), key=lambda c: (order[c["status"]], c["starts_at"], c["deal_item_id"])
    )
