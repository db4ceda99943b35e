"""Creator studio (达人): posts with a Markdown editor and a product-card picker, tracking
links and their clicks, earnings and statements, live rooms, briefs and applications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from juxing.catalog import service as catalog
from juxing.commission import links, statements
from juxing.content import service as content
from juxing.content import views as content_views
from juxing.content.endpoints import _hub as content_hub
from juxing.content.markdown import render_markdown
from juxing.deals import service as deals
from juxing.kit.db import DbSession
from juxing.kit.errors import Forbidden, NotFound, Unprocessable
from juxing.kit.time import utcnow
from juxing.marketplace import service as marketplace
from juxing.models.accounts import User
from juxing.models.commission import Click, TrackingLink
from juxing.models.content import PostStatus
from juxing.web.forms import local_input, utc_datetime
from juxing.web.i18n import N_
from juxing.web.pages import CreatorPage, redirect, render

router = APIRouter(include_in_schema=False)

POST_TYPES = (("article", N_("Article")), ("list", N_("List")))


def _base_url(request: Request) -> str:
    return request.app.state.settings.public_url or str(request.base_url)


def click_counts(session: Session, link_ids: list[int]) -> dict[int, int]:
    """Clicks recorded per tracking link."""
    if not link_ids:
        return {}
    rows = session.execute(
        select(Click.link_id, func.count())
        .where(Click.link_id.in_(link_ids))
        .group_by(Click.link_id)
    ).all()
    return {int(link_id): int(n) for link_id, n in rows}


def daily_chart(days: int, series: dict[str, list[tuple[datetime, int]]]) -> dict[str, Any]:
    """Chart.js data: one dataset per series, summed per UTC day over the last ``days``."""
    today = utcnow().date()
    labels = [today - timedelta(days=days - 1 - i) for i in range(days)]
    index = {d: i for i, d in enumerate(labels)}
    datasets = []
    for label, points in series.items():
        data = [0] * days
        for at, value in points:
            i = index.get(at.astimezone(UTC).date())
            if i is not None:
                data[i] += value
        datasets.append({"label": label, "data": data})
    return {"labels": [d.strftime("%m-%d") for d in labels], "datasets": datasets}


def _click_times(session: Session, creator_id: int, since: datetime) -> list[tuple[datetime, int]]:
    rows = session.scalars(
        select(Click.clicked_at).where(Click.creator_id == creator_id, Click.clicked_at >= since)
    ).all()
    return [(at if at.tzinfo else at.replace(tzinfo=UTC), 1) for at in rows]


@router.get("/studio", response_class=HTMLResponse)
def main_page(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    """The creator's dashboard: earnings, clicks, posts, links, live rooms."""
    try:
        profile = content.active_creator(session=session, user=user)
    except Forbidden:
        # No approved creator profile yet: say so, with the application and its state.
        return render(
            request,
            "studio/setup.html",
            {"applications": content.my_applications(session=session, user=user)},
        )
    earnings = statements.creator_earnings(session, creator_id=user.id, currency="CNY")
    posts, post_total = content.my_posts(session=session, user=user, status=None, limit=8, offset=0)
    link_rows, link_total = links.list_links(session, creator_id=user.id, limit=5, offset=0)
    clicks = click_counts(session, [link.id for link in link_rows])
    total_clicks = session.scalar(select(func.count()).where(Click.creator_id == user.id)) or 0
    since = utcnow() - timedelta(days=14)
    rows = statements.creator_statement(session, creator_id=user.id, since=None, until=None)
    rooms, _ = content.list_rooms(
        session=session, status=None, creator_id=user.id, limit=5, offset=0
    )
    return render(
        request,
        "studio/main.html",
        {
            "profile": profile,
            "earnings": earnings,
            "posts": posts,
            "post_total": post_total,
            "links": link_rows,
            "link_total": link_total,
            "clicks": clicks,
            "total_clicks": total_clicks,
            "base_url": _base_url(request),
            "token_of": links.token_of,
            "orders": len({r.order_id for r in rows}),
            "series_chart": daily_chart(
                14,
                {
                    N_("Clicks"): _click_times(session, user.id, since),
                    N_("Orders"): [(r.placed_at, 1) for r in rows],
                },
            ),
            "commissions": sorted(rows, key=lambda r: r.placed_at, reverse=True)[:8],
            "rooms": rooms,
        },
    )


# --- posts ----------------------------------------------------------------------------------


def picker_cards(request: Request, session: Session) -> list[dict[str, Any]]:
    """Deals of the current festival that a post can carry as product cards."""
    festival = next(iter(deals.list_festivals(session=session, current_only=True)), None)
    if festival is None:
        return []
    cards = deals.festival_deals(
        session=session, festival_id=festival.id, redis_client=request.app.state.redis
    )
    return [c for c in cards if c["status"] in ("live", "upcoming")][:40]


def _parse_cards(values: list[str], notes: dict[str, str]) -> list[dict[str, Any]]:
    """Picker values ``product_id:deal_item_id`` (the deal part may be empty) as card inputs."""
    cards: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        product, _, deal = value.partition(":")
        if not product.isdigit() or (deal and not deal.isdigit()):
            raise Unprocessable(
                "cards: pick products from the list.",
                code="invalid_card",
                details={"field": f"form.card.{index}"},
            )
        card: dict[str, Any] = {"product_id": int(product)}
        if deal:
            card["deal_item_id"] = int(deal)
        note = notes.get(value, "").strip()
        if note:
            card["note"] = note[:1000]
        cards.append(card)
    return cards


async def _card_notes(request: Request) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if key.startswith("note:") and isinstance(value, str):
            out[key[5:]] = value
    return out


def _editor(
    request: Request,
    session: Session,
    user: User,
    *,
    post: Any = None,
    findings: list[dict[str, Any]] | None = None,
) -> HTMLResponse:
    picked: dict[str, str] = {}
    if post is not None:
        for c in post.cards:
            picked[f"{c.product_id}:{c.deal_item_id or ''}"] = c.note
    return render(
        request,
        "studio/editor.html",
        {
            "post": post,
            "post_types": POST_TYPES,
            "candidates": picker_cards(request, session),
            "picked": picked,
            "preview": render_markdown(post.body_markdown) if post is not None else "",
            "findings": findings,
            "link": _post_link(session, user, post) if post is not None else None,
            "base_url": _base_url(request),
            "token_of": links.token_of,
        },
    )


def _post_link(session: Session, user: User, post: Any) -> TrackingLink | None:
    return session.scalar(
        select(TrackingLink).where(
            TrackingLink.creator_id == user.id,
            TrackingLink.target_type == "post",
            TrackingLink.target_id == post.id,
        )
    )


@router.post("/studio/apply")
def apply_as_creator(
    user: CreatorPage,
    session: DbSession,
    handle: Annotated[str, Form(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_]+$")],
    bio: Annotated[str, Form(max_length=500)] = "",
    pitch: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Ask for a creator profile; an operator decides."""
    content.apply_as_creator(session=session, user=user, handle=handle, bio=bio, pitch=pitch)
    return redirect("/studio")


@router.get("/studio/posts", response_class=HTMLResponse)
def posts(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    rows, total = content.my_posts(session=session, user=user, status=None, limit=100, offset=0)
    return render(request, "studio/posts.html", {"posts": rows, "total": total})


@router.get("/studio/posts/new", response_class=HTMLResponse)
def new_post(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    """The editor: Markdown with a live preview, and the product-card picker."""
    return _editor(request, session, user)


@router.post("/studio/posts")
def create_post(
    request: Request,
    user: CreatorPage,
    session: DbSession,
    notes: Annotated[dict[str, str], Depends(_card_notes)],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    type: Annotated[str, Form(pattern="^(article|list)$")] = "article",
    summary: Annotated[str, Form(max_length=500)] = "",
    body_markdown: Annotated[str, Form(max_length=50_000)] = "",
    card: Annotated[list[str] | None, Form()] = None,
    action: Annotated[str, Form(pattern="^(save|publish)$")] = "save",
) -> Response:
    """Save a new draft, and publish it when asked (moderation may hold it for review).

    A plain ``def``: the database work runs in a worker thread, not on the event loop.
    """
    post = content.create_post(
        session=session,
        user=user,
        data={
            "type": type,
            "title": title,
            "summary": summary,
            "body_markdown": body_markdown,
            "cards": _parse_cards(card or [], notes),
        },
    )
    if action == "publish":
        content.publish_post(session=session, user=user, post_id=post.id)
    return redirect(f"/studio/posts/{post.id}")


@router.get("/studio/posts/{post_id}", response_class=HTMLResponse)
def edit_post(
    post_id: int, request: Request, user: CreatorPage, session: DbSession
) -> HTMLResponse:
    post = content.get_post(session=session, post_id=post_id, viewer=user)
    if post.author_id != user.id:
        raise NotFound("No such post.")
    return _editor(request, session, user, post=post)


@router.post("/studio/posts/{post_id}")
def save_post(
    post_id: int,
    request: Request,
    user: CreatorPage,
    session: DbSession,
    notes: Annotated[dict[str, str], Depends(_card_notes)],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    summary: Annotated[str, Form(max_length=500)] = "",
    body_markdown: Annotated[str, Form(max_length=50_000)] = "",
    card: Annotated[list[str] | None, Form()] = None,
    action: Annotated[str, Form(pattern="^(save|publish|unpublish)$")] = "save",
) -> Response:
    """Save an edit (a new version), then publish or unpublish when asked."""
    if action == "unpublish":
        content.unpublish_post(session=session, user=user, post_id=post_id)
        return redirect(f"/studio/posts/{post_id}")
    content.update_post(
        session=session,
        user=user,
        post_id=post_id,
        changes={
            "title": title,
            "summary": summary,
            "body_markdown": body_markdown,
            "cards": _parse_cards(card or [], notes),
        },
    )
    if action == "publish":
        content.publish_post(session=session, user=user, post_id=post_id)
    return redirect(f"/studio/posts/{post_id}")


@router.post("/studio/preview", response_class=HTMLResponse)
def preview(
    user: CreatorPage, body_markdown: Annotated[str, Form(max_length=50_000)] = ""
) -> HTMLResponse:
    """The Markdown preview (an htmx partial), sanitized like the published post."""
    return HTMLResponse(render_markdown(body_markdown))


@router.get("/studio/picker", response_class=HTMLResponse)
def picker(
    request: Request,
    user: CreatorPage,
    session: DbSession,
    q: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    """Products matching ``q`` for the card picker (an htmx partial)."""
    products: list[Any] = []
    if q.strip():
        products, _ = catalog.list_products(session=session, q=q.strip(), limit=12)
    skus = deals.card_states(
        session=session,
        sku_ids=[p.skus[0].id for p in products if p.skus],
        redis_client=request.app.state.redis,
    )["skus"]
    found = []
    for p in products:
        state = skus.get(p.skus[0].id) if p.skus else None
        deal = state["deal_item_id"] if state and state["status"] in ("live", "upcoming") else None
        found.append({"product": p, "state": state, "deal_item_id": deal})
    return render(request, "studio/_picker_results.html", {"found": found})


# --- tracking links ---------------------------------------------------------------------------


@router.get("/studio/links", response_class=HTMLResponse)
def links_page(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    rows, total = links.list_links(session, creator_id=user.id, limit=100, offset=0)
    return render(
        request,
        "studio/links.html",
        {
            "links": rows,
            "total": total,
            "clicks": click_counts(session, [link.id for link in rows]),
            "base_url": _base_url(request),
            "token_of": links.token_of,
        },
    )


@router.post("/studio/links")
def create_link(
    request: Request,
    user: CreatorPage,
    session: DbSession,
    target_type: Annotated[str, Form(pattern="^(post|deal_item|product|live_room)$")],
    target_id: Annotated[int, Form(gt=0)],
    next: Annotated[str, Form(max_length=2000)] = "/studio/links",
) -> Response:
    """Make (or get) the tracking link for a post, deal, product or live room."""
    from juxing.web.account import safe_next

    links.link_for(
        session,
        secret_key=request.app.state.settings.secret_key,
        creator_id=user.id,
        target_type=target_type,
        target_id=target_id,
    )
    return redirect(safe_next(next, "/studio/links"))


# --- earnings -----------------------------------------------------------------------------


@router.get("/studio/earnings", response_class=HTMLResponse)
def earnings_page(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    """Pending and available earnings, and the statement of every attributed order line."""
    rows = statements.creator_statement(session, creator_id=user.id, since=None, until=None)
    return render(
        request,
        "studio/earnings.html",
        {
            "earnings": statements.creator_earnings(session, creator_id=user.id, currency="CNY"),
            "rows": sorted(rows, key=lambda r: r.placed_at, reverse=True),
            "total": sum(r.commission_minor for r in rows),
            "series_chart": daily_chart(
                30,
                {N_("Earnings (¥)"): [(r.placed_at, r.commission_minor // 100) for r in rows]},
            ),
        },
    )


# --- live rooms ---------------------------------------------------------------------------


def _publish_room(background: BackgroundTasks, request: Request, room: Any, event: str) -> None:
    # Viewers hear about it after the unit of work committed (like the API).
    hub = content_hub(request)  # the API's hub, with its stock probe for ticks
    background.add_task(
        hub.publish, room.id, event, content_views.pinned_event(room), room.revision
    )


@router.get("/studio/live", response_class=HTMLResponse)
def live_rooms(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    rooms, _ = content.list_rooms(
        session=session, status=None, creator_id=user.id, limit=50, offset=0
    )
    return render(
        request,
        "studio/live.html",
        {
            "rooms": [content_views.room_out(session, r) for r in rooms],
            "candidates": picker_cards(request, session),
            "default_start": local_input(utcnow() + timedelta(hours=1)),
        },
    )


@router.post("/studio/live")
def schedule_room(
    user: CreatorPage,
    session: DbSession,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    scheduled_at: Annotated[str, Form(max_length=30)],
    description: Annotated[str, Form(max_length=2000)] = "",
    card: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Schedule a live room with its products."""
    content.create_room(
        session=session,
        user=user,
        data={
            "title": title,
            "description": description,
            "scheduled_at": utc_datetime(scheduled_at, field="scheduled_at"),
            "items": _parse_cards(card or [], {}),
        },
    )
    return redirect("/studio/live")


@router.post("/studio/live/{room_id}/{action}")
def room_action(
    room_id: int,
    action: str,
    request: Request,
    background: BackgroundTasks,
    user: CreatorPage,
    session: DbSession,
    item_id: Annotated[int | None, Form()] = None,
) -> Response:
    """Go live, end, or pin a product; viewers get the change over server-sent events."""
    if action == "start":
        room, event = content.start_room(session=session, user=user, room_id=room_id), "status"
    elif action == "end":
        room, event = content.end_room(session=session, user=user, room_id=room_id), "status"
    elif action == "pin":
        room = content.pin_item(session=session, user=user, room_id=room_id, item_id=item_id)
        event = "pin"
    else:
        raise Unprocessable("No such action.", details={"field": "path.action"})
    _publish_room(background, request, content_views.room_out(session, room), event)
    return redirect("/studio/live")


# --- briefs -------------------------------------------------------------------------------


@router.get("/studio/briefs", response_class=HTMLResponse)
def briefs(request: Request, user: CreatorPage, session: DbSession) -> HTMLResponse:
    """Open briefs from merchants, and this creator's applications."""
    open_briefs, _ = marketplace.list_briefs(session=session, user=user, limit=50)
    mine, _ = marketplace.list_applications(session=session, user=user, limit=50)
    applied = {a.brief_id for a in mine}
    titles = {b.id: b.title for b in open_briefs}
    posts_published, _ = content.my_posts(
        session=session, user=user, status=PostStatus.PUBLISHED, limit=50, offset=0
    )
    return render(
        request,
        "studio/briefs.html",
        {
            "briefs": open_briefs,
            "applications": mine,
            "applied": applied,
            "titles": titles,
            "posts": posts_published,
        },
    )


@router.post("/studio/briefs/{brief_id}/apply")
def apply(
    brief_id: int,
    user: CreatorPage,
    session: DbSession,
    pitch: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    marketplace.apply(session=session, user=user, brief_id=brief_id, pitch=pitch)
    return redirect("/studio/briefs")


@router.post("/studio/applications/{application_id}/deliver")
def deliver(
    application_id: int,
    user: CreatorPage,
    session: DbSession,
    post_id: Annotated[int, Form(gt=0)],
) -> Response:
    """Link the published post that fulfils an accepted brief."""
    marketplace.deliver(
        session=session,
        user=user,
        application_id=application_id,
        post_id=post_id,
        live_room_id=None,
    )
    return redirect("/studio/briefs")


@router.post("/studio/applications/{application_id}/withdraw")
def withdraw(application_id: int, user: CreatorPage, session: DbSession) -> Response:
    marketplace.withdraw(session=session, user=user, application_id=application_id)
    return redirect("/studio/briefs")
