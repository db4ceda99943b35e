"""Live product cards: what a post's or live room's product shows right now.

The state (price, deal price, countdown, stock left, sold out) comes from the deals domain
(``juxing.deals.service.card_states``) every time a card is shown; when a deal is sold out
or over, the card carries substitutes still on sale (``juxing.catalog.service.similar_on_sale``).
Every card view also records the price it showed (``PriceObservation``), the history that
absolute price claims are checked against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from juxing.kit.time import utcnow
from juxing.models.content import PriceObservation

SUBSTITUTE_STATUSES = frozenset({"sold_out", "ended"})
SUBSTITUTES = 3
PRICE_HISTORY_DAYS = 180
# Record a price at most this often per product, so hot cards do not flood the history.
OBSERVATION_EVERY = timedelta(minutes=10)


class CardRef(Protocol):
    product_id: int
    sku_id: int | None
    deal_item_id: int | None


@dataclass
class CardView:
    product_id: int
    sku_id: int | None
    deal_item_id: int | None
    title: str
    status: str  # upcoming | live | sold_out | ended | not_on_sale
    list_price_minor: int | None
    deal_price_minor: int | None
    currency: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    stock_left: int | None
    seconds_to_start: int | None = None
    seconds_to_end: int | None = None
    substitutes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current_price_minor(self) -> int | None:
        """What a shopper pays now: the deal price while the deal is live, else list price."""
        if self.status == "live" and self.deal_price_minor is not None:
            return self.deal_price_minor
        return self.list_price_minor


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _first(obj: Any, *names: str) -> Any:
    for name in names:
        value = _get(obj, name)
        if value is not None:
            return value
    return None


def _fetch_states(
    session: Session, refs: Sequence[CardRef], now: datetime
) -> tuple[dict[int, Any], dict[int, Any]]:
    from juxing.deals import service as deals  # the deals domain owns card state

    sku_ids = sorted({r.sku_id for r in refs if r.sku_id is not None and r.deal_item_id is None})
    deal_item_ids = sorted({r.deal_item_id for r in refs if r.deal_item_id is not None})
    if not sku_ids and not deal_item_ids:
        return {}, {}
    raw = deals.card_states(
        session=session, sku_ids=tuple(sku_ids), deal_item_ids=tuple(deal_item_ids), now=now
    )
    return dict(raw.get("skus", {})), dict(raw.get("deal_items", {}))


def _view(ref: CardRef, state: Any, now: datetime) -> CardView:
    if state is None:
        return CardView(
            product_id=ref.product_id,
            sku_id=ref.sku_id,
            deal_item_id=ref.deal_item_id,
            title="",
            status="not_on_sale",
            list_price_minor=None,
            deal_price_minor=None,
            currency=None,
            starts_at=None,
            ends_at=None,
            stock_left=0,
        )
    starts_at = _get(state, "starts_at")
    ends_at = _get(state, "ends_at")
    view = CardView(
        product_id=int(_get(state, "product_id") or ref.product_id),
        sku_id=_get(state, "sku_id", ref.sku_id),
        deal_item_id=_get(state, "deal_item_id", ref.deal_item_id),
        title=str(_get(state, "title", "") or ""),
        status=str(_get(state, "status", "not_on_sale")),
        list_price_minor=_first(state, "list_price_minor", "price_minor"),
        deal_price_minor=_get(state, "deal_price_minor"),
        currency=_get(state, "currency"),
        starts_at=starts_at,
        ends_at=ends_at,
        stock_left=_first(state, "stock_left", "available", "stock"),
    )
    if view.status == "upcoming" and starts_at is not None:
        view.seconds_to_start = max(0, int((starts_at - now).total_seconds()))
    if view.status in {"upcoming", "live"} and ends_at is not None:
        view.seconds_to_end = max(0, int((ends_at - now).total_seconds()))
    return view


def resolve(
    *,
    session: Session,
    refs: Sequence[CardRef],
    now: datetime | None = None,
    substitutes: bool = True,
    record_prices: bool = False,
) -> list[CardView]:
    """The live state of each card in ``refs`` (same order)."""
    now = now or utcnow()
    by_sku, by_deal = _fetch_states(session, refs, now)
    views = []
    for ref in refs:
        state = by_deal.get(ref.deal_item_id) if ref.deal_item_id is not None else None
        if state is None and ref.deal_item_id is None and ref.sku_id is not None:
            state = by_sku.get(ref.sku_id)
        views.append(_view(ref, state, now))
    if substitutes:
        _add_substitutes(session, views)
    if record_prices:
        record_observations(session=session, views=views, now=now)
    return views


def _add_substitutes(session: Session, views: list[CardView]) -> None:
    from juxing.catalog import service as catalog

    cache: dict[int, list[dict[str, Any]]] = {}
    for view in views:
        if view.status in SUBSTITUTE_STATUSES:
            if view.product_id not in cache:
                cache[view.product_id] = list(
                    catalog.similar_on_sale(
                        session=session, product_id=view.product_id, limit=SUBSTITUTES
                    )
                )
            view.substitutes = cache[view.product_id]


def record_observations(*, session: Session, views: Sequence[CardView], now: datetime) -> None:
    """Append the prices shown to the price history (at most every ``OBSERVATION_EVERY``)."""
    priced = {v.product_id: v for v in views if v.current_price_minor is not None}
    if not priced:
        return
    recent = set(
        session.scalars(
            select(PriceObservation.product_id).where(
                PriceObservation.product_id.in_(priced),
                PriceObservation.observed_at > now - OBSERVATION_EVERY,
            )
        )
    )
    for product_id, view in priced.items():
        if product_id in recent:
            continue
        session.add(
            PriceObservation(
                product_id=product_id,
                sku_id=view.sku_id,
                deal_item_id=view.deal_item_id,
                price_minor=view.current_price_minor,
                currency=view.currency or "CNY",
                observed_at=now,
            )
        )
    session.flush()


def lowest_seen(
    *, session: Session, product_ids: Sequence[int], now: datetime | None = None
) -> dict[int, int]:
    """The lowest price observed per product over the last ``PRICE_HISTORY_DAYS``."""
    if not product_ids:
        return {}
    now = now or utcnow()
    rows = session.execute(
        select(PriceObservation.product_id, func.min(PriceObservation.price_minor))
        .where(
            PriceObservation.product_id.in_(set(product_ids)),
            PriceObservation.observed_at > now - timedelta(days=PRICE_HISTORY_DAYS),
        )
        .group_by(PriceObservation.product_id)
    ).all()
    return {int(pid): int(price) for pid, price in rows}
