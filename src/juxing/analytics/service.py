"""Analytics services: the segmentation batch job and segment read models."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from juxing.analytics.segments import (
    BehaviourAccumulator,
    Segmentation,
    audience_mix,
    kind_codes,
    segment,
)
from juxing.kit.errors import NotFound
from juxing.kit.time import utcnow
from juxing.models.analytics import AudienceSegment, ShopperSegment
from juxing.models.catalog import Category, Sku
from juxing.models.events import BehaviorEvent

CHANNEL_NAMES = {
    "product": "product pages",
    "post": "creator posts",
    "live_room": "live rooms",
    "creator": "creator pages",
    "merchant": "shop pages",
}


def accumulate_events(
    session: Session, *, source: str = "app", chunk: int = 50_000
) -> BehaviourAccumulator:
    """Stream the behaviour log (by id, ``chunk`` rows at a time) into per-shopper counts."""
    prices = (
        select(Sku.product_id, func.min(Sku.list_price_minor).label("price"))
        .group_by(Sku.product_id)
        .subquery()
    )
    acc = BehaviourAccumulator()
    last_id = 0
    while True:
        rows = session.execute(
            select(
                BehaviorEvent.id,
                BehaviorEvent.user_id,
                BehaviorEvent.action,
                BehaviorEvent.occurred_at,
                BehaviorEvent.category_id,
                BehaviorEvent.target_type,
                prices.c.price,
            )
            .outerjoin(
                prices,
                (prices.c.product_id == BehaviorEvent.target_id)
                & (BehaviorEvent.target_type == "product"),
            )
            .where(BehaviorEvent.source == source, BehaviorEvent.id > last_id)
            .order_by(BehaviorEvent.id)
            .limit(chunk)
        ).all()
        if not rows:
            return acc
        last_id = rows[-1][0]
        acc.add(
            users=np.array([r[1] for r in rows], dtype=np.int64),
            kinds=kind_codes([r[2] for r in rows]),
            ts=np.array([r[3].timestamp() for r in rows]),
            categories=np.array([r[4] if r[4] is not None else -1 for r in rows], dtype=np.int64),
            channels=np.array([r[5] for r in rows], dtype=object),
            prices=np.array([r[6] if r[6] is not None else np.nan for r in rows], dtype=np.float64),
        )


def compute_segments(
    session: Session, *, k: int = 6, seed: int = 7, source: str = "app"
) -> Segmentation:
    """Recompute every shopper's segment from the events and replace the stored segments."""
    behaviour = accumulate_events(session, source=source).behaviour()
    names = dict(
        session.execute(
            select(Category.id, Category.name).where(Category.id.in_(behaviour.category_ids))
        ).all()
    )
    result = segment(behaviour, k=k, seed=seed, category_names=names, channel_names=CHANNEL_NAMES)
    store_segments(session, result)
    return result


def store_segments(session: Session, result: Segmentation) -> list[AudienceSegment]:
    """Replace the stored segmentation with ``result`` (one transaction)."""
    session.execute(delete(ShopperSegment))
    session.execute(delete(AudienceSegment))
    run_id = secrets.token_hex(8)
    now = utcnow()
    rows = [
        AudienceSegment(
            key=s.key,
            name=s.name,
            description=s.description,
            size=s.size,
            traits=s.traits,
            run_id=run_id,
            computed_at=now,
        )
        for s in result.segments
    ]
    session.add_all(rows)
    session.flush()
    ids = [r.id for r in rows]
    mapping = [
        {"user_id": int(u), "segment_id": ids[int(lbl)]}
        for u, lbl in zip(result.user_ids, result.labels, strict=True)
    ]
    for start in range(0, len(mapping), 5000):
        session.execute(insert(ShopperSegment), mapping[start : start + 5000])
    return rows


def list_segments(*, session: Session) -> list[AudienceSegment]:
    """The current segments, largest first."""
    return list(
        session.scalars(
            select(AudienceSegment).order_by(AudienceSegment.size.desc(), AudienceSegment.id)
        ).all()
    )


def creator_audience(*, session: Session, creator_id: int) -> dict[str, Any]:
    """A creator's engaged audience described as a mix of segments."""
    from juxing.marketplace.recommend import engaged_audiences, segment_map

    audience = engaged_audiences(session, [creator_id]).get(creator_id, {})
    user_segment, names = segment_map(session)
    mix = audience_mix(audience, user_segment)
    return {
        "creator_id": creator_id,
        "engaged_shoppers": len(audience),
        "segmented_shoppers": sum(1 for u in audience if u in user_segment),
        "mix": [{"key": k, "name": names.get(k, k), "share": round(v, 4)} for k, v in mix.items()],
    }


def get_segment(*, session: Session, key: str) -> AudienceSegment:
    seg = session.scalar(select(AudienceSegment).where(AudienceSegment.key == key))
    if seg is None:
        raise NotFound("No such segment.")
    return seg
