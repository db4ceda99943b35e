"""Tracking links (short code + HMAC signature) and click recording."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from juxing.kit.errors import NotFound, Unprocessable
from juxing.kit.security import constant_time_equals, sign
from juxing.kit.time import utcnow
from juxing.models.catalog import Product
from juxing.models.commission import Click, LinkTarget, TrackingLink
from juxing.models.deals import DealItem

CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 8
SIGNATURE_LENGTH = 16  # hex characters: 64 bits of HMAC-SHA256
VISITOR_COOKIE = "juxing_vid"
TARGET_PATHS = {
    LinkTarget.PRODUCT: "/products/{id}",
    LinkTarget.DEAL_ITEM: "/deals/items/{id}",
    LinkTarget.POST: "/posts/{id}",
    LinkTarget.LIVE_ROOM: "/live/{id}",
}


def _signature(secret_key: str, *, code: str, creator_id: int, target_key: str) -> str:
    message = f"{code}|{creator_id}|{target_key}".encode()
    return sign(secret_key, "tracking-link", message)[:SIGNATURE_LENGTH]


def token_of(link: TrackingLink) -> str:
    """The public token of a link: ``<code>.<signature>``."""
    return f"{link.code}.{link.signature}"


def link_url(link: TrackingLink, base_url: str) -> str:
    """The short URL a creator shares."""
    return f"{base_url.rstrip('/')}/t/{token_of(link)}"


def target_path(link: TrackingLink) -> str:
    """Where a click on the link lands, relative to the site."""
    return TARGET_PATHS[LinkTarget(link.target_type)].format(id=link.target_id)


@dataclass(frozen=True)
class _Target:
    key: str
    product_id: int | None = None
    deal_item_id: int | None = None
    post_id: int | None = None
    live_room_id: int | None = None


def _content_models():
    from juxing.models import content

    return content


def _resolve_target(
    session: Session,
    *,
    creator_id: int,
    target_type: LinkTarget,
    target_id: int,
    post_id: int | None,
) -> _Target:
    if post_id is not None and target_type not in (LinkTarget.PRODUCT, LinkTarget.DEAL_ITEM):
        raise Unprocessable(
            "post_id marks a product card: use it with a product or deal_item target.",
            code="invalid_link_target",
            details={"field": "body.post_id"},
        )
    if post_id is not None:
        _own_post(session, creator_id=creator_id, post_id=post_id)
    suffix = f"@post:{post_id}" if post_id is not None else ""
    if target_type is LinkTarget.PRODUCT:
        if session.get(Product, target_id) is None:
            raise NotFound("No such product.", details={"field": "body.target_id"})
        return _Target(f"product:{target_id}{suffix}", product_id=target_id, post_id=post_id)
    if target_type is LinkTarget.DEAL_ITEM:
        item = session.get(DealItem, target_id)
        if item is None:
            raise NotFound("No such deal item.", details={"field": "body.target_id"})
        return _Target(
            f"deal_item:{target_id}{suffix}",
            product_id=item.product_id,
            deal_item_id=item.id,
            post_id=post_id,
        )
    if target_type is LinkTarget.POST:
        _own_post(session, creator_id=creator_id, post_id=target_id)
        return _Target(f"post:{target_id}", post_id=target_id)
    content = _content_models()
    room = session.get(content.LiveRoom, target_id)
    if room is None or room.creator_id != creator_id:
        raise NotFound("No such live room of yours.", details={"field": "body.target_id"})
    return _Target(f"live_room:{target_id}", live_room_id=target_id)


def _own_post(session: Session, *, creator_id: int, post_id: int) -> None:
    content = _content_models()
    post = session.get(content.Post, post_id)
    if post is None or post.author_id != creator_id:
        raise NotFound("No such post of yours.", details={"field": "body.post_id"})


def link_for(
    session: Session,
    *,
    secret_key: str,
    creator_id: int,
    target_type: LinkTarget | str,
    target_id: int,
    post_id: int | None = None,
) -> TrackingLink:
    """The creator's link for a target, made on first use (one link per creator and target).

    ``post_id`` with a product or deal item target is a product card inside that post.
    """
    kind = LinkTarget(target_type)
    target = _resolve_target(
        session, creator_id=creator_id, target_type=kind, target_id=target_id, post_id=post_id
    )
    existing = session.scalar(
        select(TrackingLink).where(
            TrackingLink.creator_id == creator_id, TrackingLink.target_key == target.key
        )
    )
    if existing is not None:
        return existing
    for _attempt in range(5):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        link = TrackingLink(
            code=code,
            signature=_signature(
                secret_key, code=code, creator_id=creator_id, target_key=target.key
            ),
            creator_id=creator_id,
            target_type=kind.value,
            target_id=target_id,
            target_key=target.key,
            product_id=target.product_id,
            deal_item_id=target.deal_item_id,
            post_id=target.post_id,
            live_room_id=target.live_room_id,
            created_at=utcnow(),
        )
        try:
            with session.begin_nested():
                session.add(link)
                session.flush()
            return link
        except IntegrityError:
            again = session.scalar(
                select(TrackingLink).where(
                    TrackingLink.creator_id == creator_id, TrackingLink.target_key == target.key
                )
            )
            if again is not None:
                return again
    raise RuntimeError("could not allocate a tracking code")  # pragma: no cover


def verify_token(session: Session, *, secret_key: str, token: str) -> TrackingLink:
    """The link behind a token; a forged, altered or disabled token is 404."""
    code, _, signature = token.partition(".")
    if (
        len(code) != CODE_LENGTH
        or len(signature) != SIGNATURE_LENGTH
        or not all(ch in CODE_ALPHABET for ch in code)
    ):
        raise NotFound("No such link.", code="invalid_link")
    link = session.scalar(select(TrackingLink).where(TrackingLink.code == code))
    if link is None or link.disabled_at is not None:
        raise NotFound("No such link.", code="invalid_link")
    expected = _signature(
        secret_key, code=link.code, creator_id=link.creator_id, target_key=link.target_key
    )
    # Both the token and the stored row must carry the signature of the row's fields.
    if not constant_time_equals(expected, signature) or not constant_time_equals(
        expected, link.signature
    ):
        raise NotFound("No such link.", code="invalid_link")
    return link


def hash_identifier(secret_key: str, purpose: str, value: str) -> str:
    """A keyed hash of an IP or device fingerprint: comparable, not reversible."""
    return sign(secret_key, f"click-{purpose}", value.encode())[:32]


def device_fingerprint(*, user_agent: str, accept_language: str, platform: str) -> str:
    return f"{user_agent}|{accept_language}|{platform}"


def record_click(
    session: Session,
    *,
    link: TrackingLink,
    secret_key: str,
    shopper_id: int | None,
    visitor_id: str | None,
    ip: str,
    fingerprint: str,
    referrer: str | None,
    at: datetime | None = None,
) -> Click:
    """Record one click on a verified link."""
    click = Click(
        link_id=link.id,
        creator_id=link.creator_id,
        product_id=link.product_id,
        post_id=link.post_id,
        live_room_id=link.live_room_id,
        shopper_id=shopper_id,
        visitor_id=visitor_id,
        ip_hash=hash_identifier(secret_key, "ip", ip),
        device_hash=hash_identifier(secret_key, "device", fingerprint),
        referrer=(referrer or None) and referrer[:512],
        clicked_at=at or utcnow(),
    )
    session.add(click)
    session.flush()
    return click


def featured_products(
    session: Session, *, post_id: int | None, live_room_id: int | None
) -> set[int]:
    """Products featured in a post's cards or a live room's items (what an entry link covers)."""
    content = _content_models()
    if post_id is not None:
        rows = session.scalars(
            select(content.PostProductCard.product_id).where(
                content.PostProductCard.post_id == post_id
            )
        )
        return set(rows)
    if live_room_id is not None:
        rows = session.scalars(
            select(content.LiveRoomItem.product_id).where(
                content.LiveRoomItem.room_id == live_room_id
            )
        )
        return set(rows)
    return set()


def list_links(
    session: Session, *, creator_id: int, limit: int, offset: int
) -> tuple[list[TrackingLink], int]:
    """A creator's links, newest first."""
    from sqlalchemy import func

    base = select(TrackingLink).where(TrackingLink.creator_id == creator_id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(base.order_by(TrackingLink.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)
