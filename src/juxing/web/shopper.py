"""Shopper pages (mobile first): the personalized home feed (千人千面) with each item's
"why this", the festival, deals with countdowns and stock bars, posts with live product
cards, creators' storefronts and follows, buying with the sandbox payment provider, the order
list, the inbox, live rooms over server-sent events, and search."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.catalog import service as catalog
from juxing.content import service as content
from juxing.content import views as content_views
from juxing.deals import orders, refund_requests
from juxing.deals import service as deals
from juxing.deals.endpoints import VISITOR_COOKIE, Ctx, deals_settings, payment_provider
from juxing.feed.engine import engine_for
from juxing.kit.db import DbSession
from juxing.kit.errors import NotFound, Unprocessable
from juxing.kit.idempotency import Idempotency
from juxing.kit.time import utcnow
from juxing.models.accounts import User
from juxing.models.content import FollowTarget, LiveRoom, LiveRoomItem, LiveRoomStatus
from juxing.models.marketplace import MarketplaceNotification
from juxing.search import service as search
from juxing.web.i18n import N_
from juxing.web.pages import AnyPage, MaybeUser, ShopperPage, redirect, render

router = APIRouter(include_in_schema=False)

FEED_PAGE = 12

# Why an item is in the feed, by the feed's reason code (the feed's own English sentence is
# shown too; it names the followed creator or the item behind a recommendation).
REASON_LABELS = {
    "follow": N_("From someone you follow"),
    "festival_deal": N_("Festival deal"),
    "trending": N_("Trending now"),
    "fresh": N_("New arrival"),
    "small_shop": N_("From a small shop"),
    "new_creator": N_("New creator"),
    "because_you_viewed": N_("Because of what you looked at"),
    "explore": N_("Something new to try"),
    "boost": N_("Boosted by the traffic policy"),
}

# Why a shopper asks for a refund (退款原因), by the refund request's reason code.
REFUND_REASONS = {
    "not_received": N_("I did not receive it"),
    "damaged": N_("It arrived damaged"),
    "not_as_described": N_("Not as described"),
    "wrong_item": N_("Wrong item or size"),
    "changed_mind": N_("I changed my mind"),
    "other": N_("Another reason"),
}
# Refund-request notices (the marketplace's notifications), by kind.
REFUND_NOTICES = {
    "refund_requested": N_("A shopper asked for a refund"),
    "refund_cancelled": N_("A shopper withdrew a refund request"),
    "refund_approved": N_("Your refund request was approved"),
    "refund_rejected": N_("Your refund request was rejected"),
    "refund_auto_approved": N_("A refund request was approved automatically"),
}
REFUND_STATUSES = {
    "open": N_("Waiting for the shop"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Withdrawn"),
}


def _redis(request: Request) -> Any:
    return request.app.state.redis


def _current_festival(session: Session) -> Any:
    return next(iter(deals.list_festivals(session=session, current_only=True)), None)


def _feed_page(
    request: Request, session: Session, user: User | None, cursor: str | None
) -> tuple[Any, dict[int, Any]]:
    """One page of the personalized feed, with the deal-card state of its items."""
    page = engine_for(request.app.state).feed(
        session, user_id=user.id if user else None, limit=FEED_PAGE, cursor=cursor
    )
    deal_ids = [i.deal_item_id for i in page.items if i.deal_item_id]
    cards = (
        deals.card_states(session=session, deal_item_ids=deal_ids, redis_client=_redis(request))[
            "deal_items"
        ]
        if deal_ids
        else {}
    )
    return page, cards


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """The home feed: the current festival on top, then items picked for this shopper."""
    festival = _current_festival(session)
    deals_now = (
        deals.festival_deals(session=session, festival_id=festival.id, redis_client=_redis(request))
        if festival
        else []
    )
    page, cards = _feed_page(request, session, user, None)
    rooms, _ = content.list_rooms(
        session=session, status=LiveRoomStatus.LIVE, creator_id=None, limit=4, offset=0
    )
    return render(
        request,
        "shopper/home.html",
        {
            "festival": festival,
            "festival_cards": [c for c in deals_now if c["status"] in ("live", "upcoming")][:8],
            "feed": page,
            "cards": cards,
            "rooms": rooms,
            "reason_labels": REASON_LABELS,
        },
    )


@router.get("/feed/more", response_class=HTMLResponse)
def feed_more(
    request: Request,
    user: MaybeUser,
    session: DbSession,
    cursor: Annotated[str, Query(max_length=200)],
) -> HTMLResponse:
    """The next page of the feed, as an htmx partial (endless scroll)."""
    page, cards = _feed_page(request, session, user, cursor)
    return render(
        request,
        "shopper/_feed_items.html",
        {"feed": page, "cards": cards, "reason_labels": REASON_LABELS},
    )


@router.get("/festival", response_class=HTMLResponse)
def festival_page(request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """The current festival (聚星节) and its deals, live first."""
    festival = _current_festival(session)
    cards = (
        deals.festival_deals(session=session, festival_id=festival.id, redis_client=_redis(request))
        if festival
        else []
    )
    return render(request, "shopper/festival.html", {"festival": festival, "cards": cards})


@router.get("/deals/{deal_item_id}", response_class=HTMLResponse)
def deal_page(
    deal_item_id: int, request: Request, user: MaybeUser, session: DbSession
) -> HTMLResponse:
    """One deal with its countdown, stock bar and the buy form."""
    cards = deals.card_states(
        session=session, deal_item_ids=[deal_item_id], redis_client=_redis(request)
    )["deal_items"]
    card = cards.get(deal_item_id)
    if card is None or card["status"] == "not_on_sale":
        raise NotFound("No such deal.")
    return render(
        request,
        "shopper/deal.html",
        {
            "card": card,
            "buy_key": uuid.uuid4().hex,
            "live_rooms": _live_only_rooms(session, deal_item_id),
        },
    )


def _live_only_ids(session: Session, cards: Any) -> set[int]:
    """Which of these cards' deal items a live room sells live-only: their cards outside the
    room link to the deal page (which names the room) instead of a buy button that fails."""
    ids = {c.deal_item_id for c in cards if c.deal_item_id}
    if not ids:
        return set()
    found = session.scalars(
        select(LiveRoomItem.deal_item_id).where(
            LiveRoomItem.deal_item_id.in_(ids), LiveRoomItem.live_only.is_(True)
        )
    ).all()
    return {i for i in found if i is not None}


def _live_only_rooms(session: Session, deal_item_id: int) -> list[LiveRoom]:
    """The live rooms that sell this deal item live-only (直播专享) and are not over yet, on
    air first: such an item is bought in the room, not on the deal page."""
    rooms = session.scalars(
        select(LiveRoom)
        .join(LiveRoomItem, LiveRoomItem.room_id == LiveRoom.id)
        .where(
            LiveRoomItem.deal_item_id == deal_item_id,
            LiveRoomItem.live_only.is_(True),
        )
        .order_by(LiveRoom.scheduled_at)
    ).all()
    return sorted(
        (r for r in rooms if r.status != LiveRoomStatus.ENDED.value),
        key=lambda r: r.status != LiveRoomStatus.LIVE.value,
    ) or list(rooms)


@router.get("/deals/items/{deal_item_id}")
def deal_link_target(deal_item_id: int, user: MaybeUser) -> Response:
    """Where a tracking link to a deal item lands (the commission domain's path)."""
    return redirect(f"/deals/{deal_item_id}")


@router.get("/products/{product_id}", response_class=HTMLResponse)
def product_page(
    product_id: int, request: Request, user: MaybeUser, session: DbSession
) -> HTMLResponse:
    """A product with its SKUs and their best current deal."""
    product = catalog.get_product(session=session, product_id=product_id)
    if product.status != "active":
        raise NotFound("No such product.")
    skus = deals.card_states(
        session=session, sku_ids=[s.id for s in product.skus], redis_client=_redis(request)
    )["skus"]
    return render(request, "shopper/product.html", {"product": product, "skus": skus})


# --- buying ---------------------------------------------------------------------------------


def _idempotency(
    request: Request, session: Session, user: User, key: str, payload: dict[str, Any]
) -> Idempotency:
    """The API's idempotency guard, keyed by the form's one-time key (a double submit of the
    same form replays the first result instead of buying twice)."""
    body = json.dumps(payload, sort_keys=True).encode()
    return Idempotency(
        session=session,
        principal=f"user:{user.id}",
        key="web:" + key,
        method=request.method,
        path=request.url.path,
        request_hash=hashlib.sha256(body).hexdigest(),
        ttl_s=request.app.state.settings.idempotency_ttl_s,
    )


@router.post("/deals/{deal_item_id}/buy")
def buy(
    deal_item_id: int,
    request: Request,
    user: ShopperPage,
    session: DbSession,
    ctx: Ctx,
    buy_key: Annotated[str, Form(min_length=8, max_length=64)],
    quantity: Annotated[int, Form(ge=1, le=100)] = 1,
    live_room_id: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    """Reserve the deal (stock held, price locked) and go to payment. From a live room the
    form carries ``live_room_id``: a live-only deal is sold only there, while it is on air."""
    visitor = request.cookies.get(VISITOR_COOKIE)
    idem = _idempotency(
        request,
        session,
        user,
        buy_key,
        {"deal_item_id": deal_item_id, "quantity": quantity, "live_room_id": live_room_id},
    )
    result = idem.run(
        lambda: {
            "order_id": orders.reserve(
                session=session,
                ctx=ctx,
                shopper=user,
                deal_item_id=deal_item_id,
                quantity=quantity,
                live_room_id=live_room_id,
                visitor_id=visitor[:64] if visitor else None,
            ).id
        }
    )
    order_id = json.loads(bytes(result.body))["order_id"]
    return redirect(f"/orders/{order_id}")


@router.post("/orders/{order_id}/pay")
def pay(order_id: int, request: Request, user: ShopperPage, session: DbSession) -> Response:
    """Open (or reuse) the order's payment and go to the provider's checkout."""
    payment = orders.start_payment(
        session=session, provider=payment_provider(request), user=user, order_id=order_id
    )
    return redirect(f"/checkout/{payment.id}")


@router.get("/checkout/{payment_id}", response_class=HTMLResponse)
def checkout(
    payment_id: int, request: Request, user: ShopperPage, session: DbSession
) -> HTMLResponse:
    """The built-in sandbox provider's checkout page."""
    payment = orders.get_payment(session=session, payment_id=payment_id, user=user)
    order = orders.visible_order(session=session, order_id=payment.order_id, user=user)
    return render(request, "shopper/checkout.html", {"payment": payment, "order": order})


@router.post("/checkout/{payment_id}")
def confirm_checkout(
    payment_id: int,
    request: Request,
    user: ShopperPage,
    session: DbSession,
    ctx: Ctx,
    outcome: Annotated[str, Form(pattern="^(succeeded|failed)$")],
) -> Response:
    """The sandbox provider confirms (or declines) the charge with its signed callback,
    applied exactly once like any callback the provider posts."""
    payment = orders.get_payment(session=session, payment_id=payment_id, user=user)
    provider = payment_provider(request)
    body, signature = provider.callback(
        provider_ref=payment.provider_ref,
        outcome=outcome,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
    )
    orders.handle_callback(
        session=session, ctx=ctx, provider=provider, body=body, signature=signature
    )
    return redirect(f"/orders/{payment.order_id}")


@router.get("/orders", response_class=HTMLResponse)
def order_list(
    request: Request, user: AnyPage, session: DbSession, offset: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """The shopper's orders, newest first."""
    rows, total = orders.list_orders(session=session, shopper_id=user.id, limit=20, offset=offset)
    return render(
        request,
        "shopper/orders.html",
        {"orders": rows, "total": total, "offset": offset},
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(order_id: int, request: Request, user: AnyPage, session: DbSession) -> HTMLResponse:
    """One order: its lines, payment state, refunds and what the shopper can do next."""
    order = orders.visible_order(session=session, order_id=order_id, user=user)
    requests = refund_requests.of_order(session=session, order_id=order.id)
    closes = refund_requests.return_window_closes(order)
    can_request = (
        order.shopper_id == user.id
        and order.status in orders.REFUNDABLE
        and (closes is None or utcnow() <= closes)
        and not any(r.status == "open" for r in requests)
        and any(line.refunded_quantity < line.quantity for line in order.lines)
    )
    return render(
        request,
        "shopper/order.html",
        {
            "order": order,
            "refunds": orders.refunds_of(session=session, order_id=order.id),
            "refund_requests": requests,
            "can_request_refund": can_request,
            "return_window_closes": closes,
            "refund_reasons": REFUND_REASONS,
            "refund_statuses": REFUND_STATUSES,
            "lines_by_id": {line.id: line for line in order.lines},
            "refund_key": uuid.uuid4().hex,
        },
    )


@router.post("/orders/{order_id}/refund-requests")
def request_refund(
    order_id: int,
    request: Request,
    user: ShopperPage,
    session: DbSession,
    refund_key: Annotated[str, Form(min_length=8, max_length=64)],
    reason: Annotated[str, Form(max_length=24)],
    line_id: Annotated[list[int], Form()],
    quantity: Annotated[list[int], Form()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Ask the shop for a refund of some units (退款申请); the shop approves or rejects."""
    if reason not in REFUND_REASONS:
        raise Unprocessable("Choose a reason.", code="invalid_reason", details={"field": "reason"})
    if len(line_id) != len(quantity) or any(q < 0 for q in quantity):
        raise Unprocessable("Quantities do not match the lines.", details={"field": "quantity"})
    lines = [(lid, q) for lid, q in zip(line_id, quantity, strict=True) if q > 0]
    if not lines:
        raise Unprocessable(
            "Choose at least one unit to refund.",
            code="nothing_chosen",
            details={"field": "quantity"},
        )
    days = deals_settings(request).refund_request_auto_approve_days
    idem = _idempotency(
        request, session, user, refund_key, {"reason": reason, "note": note, "lines": lines}
    )
    idem.run(
        lambda: {
            "id": refund_requests.create(
                session=session,
                user=user,
                order_id=order_id,
                reason=reason,
                note=note,
                lines=lines,
                auto_approve_days=days,
            ).id
        }
    )
    return redirect(f"/orders/{order_id}")


@router.post("/refund-requests/{request_id}/cancel")
def cancel_refund_request(request_id: int, user: AnyPage, session: DbSession) -> Response:
    """Withdraw an open refund request."""
    r = refund_requests.cancel(session=session, request_id=request_id, user=user)
    return redirect(f"/orders/{r.order_id}")


@router.post("/orders/{order_id}/cancel")
def cancel_order(order_id: int, user: AnyPage, session: DbSession, ctx: Ctx) -> Response:
    """Cancel an unpaid order; its stock goes back on sale."""
    orders.cancel(
        session=session,
        ctx=ctx,
        order_id=order_id,
        reason="shopper_cancelled",
        user=user,
    )
    return redirect(f"/orders/{order_id}")


@router.post("/orders/{order_id}/receive")
def receive_order(order_id: int, user: AnyPage, session: DbSession) -> Response:
    """Confirm receipt of a shipped order."""
    orders.confirm_receipt(session=session, order_id=order_id, user=user)
    return redirect(f"/orders/{order_id}")


# --- content: posts, creators, follows, inbox, live rooms -----------------------------------


@router.get("/posts/{post_id}", response_class=HTMLResponse)
def post_page(post_id: int, request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """A post with its live product cards (price, countdown, stock) and its author."""
    post = content.get_post(session=session, post_id=post_id, viewer=user)
    cards = content_views.post_cards(session, [post]).get(post.id, [])
    author = None
    if post.author_kind == "creator":
        author = content.get_creator(session=session, handle_or_id=str(post.author_id))
    return render(
        request,
        "shopper/post.html",
        {
            "post": post,
            "cards": cards,
            "author": author,
            "following": _follows(session, user, FollowTarget.CREATOR, post.author_id),
            "buy_key": uuid.uuid4().hex,
            "live_only_ids": _live_only_ids(session, cards),
        },
    )


@router.get("/posts/{post_id}/cards", response_class=HTMLResponse)
def post_cards(post_id: int, request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """The post's product cards as they are now (an htmx partial the page polls): price,
    countdown, stock left, sold out with substitutes."""
    post = content.get_post(session=session, post_id=post_id, viewer=user)
    cards = content_views.post_cards(session, [post]).get(post.id, [])
    return render(
        request,
        "shopper/_post_cards.html",
        {
            "post": post,
            "cards": cards,
            "buy_key": uuid.uuid4().hex,
            "live_only_ids": _live_only_ids(session, cards),
        },
    )


def _follows(session: Session, user: User | None, kind: FollowTarget, target_id: int) -> bool:
    if user is None:
        return False
    rows, _ = content.list_follows(session=session, user=user, limit=500, offset=0)
    return any(f.target_kind == kind and f.target_id == target_id for f in rows)


@router.get("/c/{handle}", response_class=HTMLResponse)
def storefront(handle: str, request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """A creator's storefront: profile, latest posts, recommended products, live rooms."""
    profile = content.get_creator(session=session, handle_or_id=handle[:32])
    posts, _ = content.list_posts(session=session, author_id=profile.user_id, limit=12, offset=0)
    products = content.recommended_products(session=session, author_id=profile.user_id)
    rooms, _ = content.list_rooms(
        session=session, status=None, creator_id=profile.user_id, limit=5, offset=0
    )
    product_cards = content_views.product_cards(session, products)
    return render(
        request,
        "shopper/storefront.html",
        {
            "creator": profile,
            "posts": posts,
            "post_cards": content_views.post_cards(session, posts),
            "products": product_cards,
            "live_only_ids": _live_only_ids(session, product_cards),
            "rooms": [r for r in rooms if r.status != "ended"],
            "following": _follows(session, user, FollowTarget.CREATOR, profile.user_id),
        },
    )


@router.post("/follows")
def follow(
    user: AnyPage,
    session: DbSession,
    target_id: Annotated[int, Form(gt=0)],
    target_kind: Annotated[FollowTarget, Form()] = FollowTarget.CREATOR,
    action: Annotated[str, Form(pattern="^(follow|unfollow)$")] = "follow",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Follow or unfollow a creator or shop."""
    from juxing.web.account import safe_next

    if action == "follow":
        content.follow(session=session, user=user, kind=target_kind, target_id=target_id)
    else:
        content.unfollow(session=session, user=user, kind=target_kind, target_id=target_id)
    return redirect(safe_next(next))


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, user: AnyPage, session: DbSession) -> HTMLResponse:
    """New posts and go-live notices from whom the shopper follows."""
    items, total, unread = content.inbox(
        session=session, user=user, unread_only=False, limit=50, offset=0
    )
    follows, _ = content.list_follows(session=session, user=user, limit=200, offset=0)
    creators = {
        f.target_id: _creator_or_none(session, f.target_id)
        for f in follows
        if f.target_kind == FollowTarget.CREATOR
    }
    refund_notices = session.scalars(
        select(MarketplaceNotification)
        .where(
            MarketplaceNotification.user_id == user.id,
            MarketplaceNotification.kind.in_(REFUND_NOTICES),
        )
        .order_by(MarketplaceNotification.id.desc())
        .limit(20)
    ).all()
    return render(
        request,
        "shopper/inbox.html",
        {
            "items": items,
            "total": total,
            "unread": unread,
            "creators": creators,
            "refund_notices": refund_notices,
            "refund_notice_labels": REFUND_NOTICES,
        },
    )


def _creator_or_none(session: Session, user_id: int) -> Any:
    try:
        return content.get_creator(session=session, handle_or_id=str(user_id))
    except NotFound:
        return None


@router.post("/inbox/read")
def inbox_read(user: AnyPage, session: DbSession) -> Response:
    content.mark_read(session=session, user=user, up_to_id=None)
    return redirect("/inbox")


@router.get("/live/{room_id}", response_class=HTMLResponse)
def live_room(room_id: int, request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """A live room: the pinned product and the room's deals, updated over server-sent events."""
    room = content_views.room_out(session, content.load_room(session, room_id))
    creator = _creator_or_none(session, room.creator_id)
    return render(
        request,
        "shopper/live.html",
        {"room": room, "creator": creator, "buy_key": uuid.uuid4().hex},
    )


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    user: MaybeUser,
    session: DbSession,
    q: Annotated[str, Query(max_length=200)] = "",
    kind: Annotated[str, Query(max_length=10)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> HTMLResponse:
    """Search posts, products and creators (Chinese or English)."""
    results = None
    if q.strip():
        kinds = None
        if kind:
            try:
                kinds = [search.DocumentKind(kind)]
            except ValueError as exc:
                raise Unprocessable("kind: not a kind.", details={"field": "query.kind"}) from exc
        results = search.search(
            session=session, query=q.strip(), kinds=kinds, limit=20, offset=offset
        )
    creators: dict[int, Any] = {}
    if results is not None:
        for hit in results.items:
            if hit.kind == "creator":
                creators[hit.id] = _creator_or_none(session, hit.id)
    return render(
        request,
        "shopper/search.html",
        {"q": q, "kind": kind, "results": results, "creators": creators, "offset": offset},
    )
