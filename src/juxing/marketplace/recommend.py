"""Loads the evidence for matching (audiences, clicks, orders, segments) from the database
and hands it to the pure scorers in :mod:`juxing.marketplace.matching`."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from juxing.kit.time import utcnow
from juxing.marketplace.matching import (
    BriefRecord,
    CreatorRecord,
    Match,
    Target,
    rank_briefs,
    rank_creators,
)
from juxing.models.accounts import Role, User, UserRole
from juxing.models.analytics import AudienceSegment, ShopperSegment
from juxing.models.commission import Click, Commission
from juxing.models.content import Follow, LiveRoom, Post
from juxing.models.events import BehaviorEvent
from juxing.models.marketplace import Brief, BriefItem, BriefStatus
from juxing.models.orders import Order, OrderLine


def engaged_audiences(
    session: Session, creator_ids: list[int] | None = None
) -> dict[int, dict[int, float]]:
    """creator id → {shopper id: number of engagements} (events on their content, follows)."""
    post_ev = (
        select(Post.author_id.label("creator_id"), BehaviorEvent.user_id.label("user_id"))
        .join(Post, Post.id == BehaviorEvent.target_id)
        .where(BehaviorEvent.target_type == "post", BehaviorEvent.source == "app")
    )
    live_ev = (
        select(LiveRoom.creator_id.label("creator_id"), BehaviorEvent.user_id.label("user_id"))
        .join(LiveRoom, LiveRoom.id == BehaviorEvent.target_id)
        .where(BehaviorEvent.target_type == "live_room", BehaviorEvent.source == "app")
    )
    creator_ev = select(
        BehaviorEvent.target_id.label("creator_id"), BehaviorEvent.user_id.label("user_id")
    ).where(BehaviorEvent.target_type == "creator", BehaviorEvent.source == "app")
    follows = select(
        Follow.target_id.label("creator_id"), Follow.follower_id.label("user_id")
    ).where(Follow.target_kind == "creator")
    clicks = select(Click.creator_id.label("creator_id"), Click.shopper_id.label("user_id")).where(
        Click.shopper_id.is_not(None)
    )
    u = union_all(post_ev, live_ev, creator_ev, follows, clicks).subquery()
    q = select(u.c.creator_id, u.c.user_id, func.count()).group_by(u.c.creator_id, u.c.user_id)
    if creator_ids is not None:
        q = q.where(u.c.creator_id.in_(creator_ids))
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for cid, uid, n in session.execute(q):
        out[int(cid)][int(uid)] = float(n)
    return out


def creator_records(session: Session) -> list[CreatorRecord]:
    """Every creator with their audience, clicks and attributed orders."""
    creators = session.scalars(
        select(UserRole.user_id).where(UserRole.role == Role.CREATOR.value)
    ).all()
    audiences = engaged_audiences(session, list(creators))
    clicks = dict(
        session.execute(select(Click.creator_id, func.count()).group_by(Click.creator_id)).all()
    )
    orders = dict(
        session.execute(
            select(Commission.creator_id, func.count(func.distinct(Commission.order_id)))
            .where(Commission.decision == "attributed")
            .group_by(Commission.creator_id)
        ).all()
    )
    return [
        CreatorRecord(
            creator_id=int(c),
            audience=audiences.get(int(c), {}),
            clicks=int(clicks.get(c, 0)),
            orders=int(orders.get(c, 0)),
        )
        for c in creators
    ]


def segment_map(session: Session) -> tuple[dict[int, str], dict[str, str]]:
    """(shopper id → segment key, segment key → name) of the current segmentation."""
    rows = session.execute(
        select(ShopperSegment.user_id, AudienceSegment.key).join(
            AudienceSegment, AudienceSegment.id == ShopperSegment.segment_id
        )
    ).all()
    names = dict(session.execute(select(AudienceSegment.key, AudienceSegment.name)).all())
    return {int(u): k for u, k in rows}, names


def brief_target(session: Session, brief: Brief, names: dict[str, str]) -> Target:
    """Who the brief wants: buyers of its products and its wanted segments."""
    products = select(BriefItem.product_id).where(BriefItem.brief_id == brief.id)
    buyers = session.scalars(
        select(Order.shopper_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(OrderLine.product_id.in_(products), Order.paid_at.is_not(None))
        .distinct()
    ).all()
    return Target(
        buyers=frozenset(int(b) for b in buyers),
        wanted_segments=tuple(brief.wanted_segments or ()),
        segment_names=names,
    )


def creators_for_brief(
    session: Session, brief: Brief, *, limit: int = 10
) -> list[tuple[Match, str]]:
    """Recommended creators for a brief with their display names."""
    user_segment, names = segment_map(session)
    matches = rank_creators(
        brief_target(session, brief, names), creator_records(session), user_segment, limit=limit
    )
    display = dict(
        session.execute(
            select(User.id, User.display_name).where(User.id.in_([m.creator_id for m in matches]))
        ).all()
    )
    return [(m, display.get(m.creator_id, "")) for m in matches]


def briefs_for_creator(
    session: Session, creator: User, *, limit: int = 10
) -> list[tuple[int, float, list[str]]]:
    """Open briefs a creator fits best, with reasons."""
    user_segment, names = segment_map(session)
    audience = engaged_audiences(session, [creator.id]).get(creator.id, {})
    clicks = session.scalar(select(func.count()).where(Click.creator_id == creator.id)) or 0
    record = CreatorRecord(creator_id=creator.id, audience=audience, clicks=int(clicks))
    briefs = session.scalars(
        select(Brief).where(Brief.status == BriefStatus.OPEN.value, Brief.deadline > utcnow())
    ).all()
    records = [
        BriefRecord(
            brief_id=b.id,
            target=brief_target(session, b, names),
            fixed_fee_minor=b.fixed_fee_minor,
            commission_rate_bp=b.commission_rate_bp,
        )
        for b in briefs
    ]
    return rank_briefs(record, records, user_segment, limit=limit)
