"""ORM rows plus live card state → response models (shared by endpoints and the demo)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from juxing.content import cards as card_states
from juxing.content.schemas import CardOut, LiveRoomOut, PostDetail, PostOut, RoomItemOut
from juxing.models.content import LiveRoom, Post, PostProductCard


def card_out(card: Any, view: card_states.CardView) -> dict[str, Any]:
    return {
        "position": card.position,
        "product_id": card.product_id,
        "sku_id": card.sku_id,
        "deal_item_id": card.deal_item_id,
        "note": card.note,
        "title": view.title,
        "status": view.status,
        "list_price_minor": view.list_price_minor,
        "deal_price_minor": view.deal_price_minor,
        "currency": view.currency,
        "starts_at": view.starts_at,
        "ends_at": view.ends_at,
        "seconds_to_start": view.seconds_to_start,
        "seconds_to_end": view.seconds_to_end,
        "stock_left": view.stock_left,
        "sold_out": view.status == "sold_out",
        "substitutes": view.substitutes,
    }


def post_cards(session: Session, posts: Sequence[Post]) -> dict[int, list[CardOut]]:
    """Live cards of several posts with one card-state query."""
    refs = [c for p in posts for c in p.cards]
    views = card_states.resolve(session=session, refs=refs) if refs else []
    by_post: dict[int, list[CardOut]] = {p.id: [] for p in posts}
    for card, view in zip(refs, views, strict=True):
        by_post[card.post_id].append(CardOut(**card_out(card, view)))
    return by_post


def post_out(session: Session, post: Post, *, detail: bool = False) -> PostOut:
    cards = post_cards(session, [post])[post.id]
    model = PostDetail if detail else PostOut
    return model.model_validate(post, from_attributes=True).model_copy(update={"cards": cards})


def posts_out(session: Session, posts: Sequence[Post], *, detail: bool = False) -> list[PostOut]:
    cards = post_cards(session, posts)
    model = PostDetail if detail else PostOut
    return [
        model.model_validate(p, from_attributes=True).model_copy(update={"cards": cards[p.id]})
        for p in posts
    ]


def product_cards(session: Session, cards: Sequence[PostProductCard]) -> list[CardOut]:
    views = card_states.resolve(session=session, refs=cards) if cards else []
    return [CardOut(**card_out(c, v)) for c, v in zip(cards, views, strict=True)]


def room_out(session: Session, room: LiveRoom, *, viewers: int = 0) -> LiveRoomOut:
    views = card_states.resolve(session=session, refs=room.items) if room.items else []
    items = [
        RoomItemOut(id=item.id, live_only=item.live_only, **card_out(item, view))
        for item, view in zip(room.items, views, strict=True)
    ]
    return LiveRoomOut(
        id=room.id,
        creator_id=room.creator_id,
        title=room.title,
        description=room.description,
        cover_image_url=room.cover_image_url,
        scheduled_at=room.scheduled_at,
        started_at=room.started_at,
        ended_at=room.ended_at,
        status=room.status,
        pinned_item_id=room.pinned_item_id,
        revision=room.revision,
        viewers=viewers,
        peak_viewers=room.peak_viewers,
        items=items,
    )


def pinned_event(room: LiveRoomOut) -> dict[str, Any]:
    """The payload viewers get when the pin changes."""
    pinned = next((i for i in room.items if i.id == room.pinned_item_id), None)
    return {
        "room_id": room.id,
        "revision": room.revision,
        "status": room.status,
        "pinned_item_id": room.pinned_item_id,
        "pinned": pinned.model_dump(mode="json") if pinned is not None else None,
    }


def stock_snapshot(room: LiveRoomOut) -> dict[str, Any]:
    """Stock left and status per item (the ticker's payload)."""
    return {
        "items": [
            {"id": i.id, "status": i.status, "stock_left": i.stock_left, "sold_out": i.sold_out}
            for i in room.items
        ]
    }
