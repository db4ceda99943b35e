"""HTTP endpoints of the content side: creators, posts, moderation, follows, inbox, live rooms,
media. Business rules live in ``service``; this module only speaks HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from juxing.content import live, media, service, views
from juxing.content.schemas import (
    ApplicationCreate,
    ApplicationOut,
    ApproveApplication,
    ApproveCase,
    AuditOut,
    BannedTermIn,
    BannedTermOut,
    CaseOut,
    CreatorOut,
    FollowBody,
    FollowOut,
    InboxItemOut,
    InboxPage,
    LevelBody,
    LiveRoomOut,
    MarkRead,
    MediaOut,
    PinBody,
    PostCreate,
    PostDetail,
    PostOut,
    PostUpdate,
    PostVersionOut,
    ProfileUpdate,
    PublishResult,
    RejectBody,
    RoomCreate,
    Storefront,
)
from juxing.kit.auth import CreatorUser, CurrentUser, OperatorUser, OptionalUser
from juxing.kit.db import Database, DbSession
from juxing.kit.schemas import Limit, Offset, Page
from juxing.models.content import (
    ApplicationStatus,
    FollowTarget,
    LiveRoomStatus,
    ModerationStatus,
    PostStatus,
    PostType,
)

router = APIRouter(tags=["content"])


# --------------------------------------------------------------------------- creators


@router.post("/creators/applications", status_code=201, response_model=ApplicationOut)
def apply_as_creator(body: ApplicationCreate, user: CurrentUser, session: DbSession):
    """Ask to become a creator (达人); an operator approves."""
    return service.apply_as_creator(
        session=session, user=user, handle=body.handle, bio=body.bio, pitch=body.pitch
    )


@router.get("/creators/applications/mine", response_model=list[ApplicationOut])
def my_applications(user: CurrentUser, session: DbSession):
    return service.my_applications(session=session, user=user)


@router.get("/creators/applications", response_model=Page[ApplicationOut])
def list_applications(
    user: OperatorUser,
    session: DbSession,
    status: ApplicationStatus | None = ApplicationStatus.PENDING,
    limit: Limit = 50,
    offset: Offset = 0,
):
    items, total = service.list_applications(
        session=session, status=status, limit=limit, offset=offset
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/creators/applications/{application_id}/approve", response_model=CreatorOut)
def approve_application(
    application_id: int, body: ApproveApplication, user: OperatorUser, session: DbSession
):
    return service.approve_application(
        session=session, operator=user, application_id=application_id, level=body.level
    )


@router.post("/creators/applications/{application_id}/reject", response_model=ApplicationOut)
def reject_application(
    application_id: int, body: RejectBody, user: OperatorUser, session: DbSession
):
    return service.reject_application(
        session=session, operator=user, application_id=application_id, reason=body.reason
    )


@router.get("/creators", response_model=Page[CreatorOut])
def list_creators(
    session: DbSession,
    min_level: Annotated[int | None, Query(ge=1, le=5)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    """Public: creators, most followed first."""
    items, total = service.list_creators(
        session=session, limit=limit, offset=offset, min_level=min_level
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.patch("/creators/me", response_model=CreatorOut)
def update_profile(body: ProfileUpdate, user: CreatorUser, session: DbSession):
    return service.update_profile(session=session, user=user, changes=body.changes())


@router.put("/creators/{user_id}/level", response_model=CreatorOut)
def set_level(user_id: int, body: LevelBody, user: OperatorUser, session: DbSession):
    """Operators set creator levels (used by commission bonuses and the traffic policy)."""
    return service.set_level(session=session, user_id=user_id, level=body.level)


@router.get("/creators/{handle}", response_model=Storefront)
def storefront(handle: str, session: DbSession):
    """Public: a creator's storefront: profile, latest posts, recommended products, live rooms."""
    profile = service.get_creator(session=session, handle_or_id=handle[:32])
    posts, _ = service.list_posts(session=session, author_id=profile.user_id, limit=10, offset=0)
    products = service.recommended_products(session=session, author_id=profile.user_id)
    rooms, _ = service.list_rooms(
        session=session, status=None, creator_id=profile.user_id, limit=5, offset=0
    )
    return {
        "creator": profile,
        "posts": views.posts_out(session, posts),
        "products": views.product_cards(session, products),
        "live_rooms": [views.room_out(session, r) for r in rooms if r.status != "ended"],
    }


# --------------------------------------------------------------------------- posts


@router.post("/posts", status_code=201, response_model=PostDetail)
def create_post(body: PostCreate, user: CurrentUser, session: DbSession):
    """Create a draft: a creator's post, or a merchant's shop post (``merchant_id``)."""
    post = service.create_post(session=session, user=user, data=body.data())
    return views.post_out(session, post, detail=True)


@router.get("/posts", response_model=Page[PostOut])
def list_posts(
    session: DbSession,
    author_id: int | None = None,
    merchant_id: int | None = None,
    type: PostType | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    """Public: published posts, newest first."""
    items, total = service.list_posts(
        session=session,
        author_id=author_id,
        merchant_id=merchant_id,
        post_type=type,
        limit=limit,
        offset=offset,
    )
    return {
        "items": views.posts_out(session, items),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/me/posts", response_model=Page[PostDetail])
def my_posts(
    user: CurrentUser,
    session: DbSession,
    status: PostStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    """The caller's posts in every state, with moderation notes."""
    items, total = service.my_posts(
        session=session, user=user, status=status, limit=limit, offset=offset
    )
    return {
        "items": views.posts_out(session, items, detail=True),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/posts/{post_id}", response_model=PostDetail | PostOut)
def get_post(post_id: int, user: OptionalUser, session: DbSession):
    """A published post with live product cards; authors also see their drafts."""
    post = service.get_post(session=session, post_id=post_id, viewer=user)
    is_author = user is not None and user.id == post.author_id
    return views.post_out(session, post, detail=is_author)


@router.patch("/posts/{post_id}", response_model=PostDetail)
def update_post(post_id: int, body: PostUpdate, user: CurrentUser, session: DbSession):
    """Edit (a new version; the old ones are kept). A public post is checked again."""
    post = service.update_post(session=session, user=user, post_id=post_id, changes=body.changes())
    return views.post_out(session, post, detail=True)


@router.post("/posts/{post_id}/publish", response_model=PublishResult)
def publish_post(post_id: int, user: CurrentUser, session: DbSession):
    """Run the automatic checks: the post goes live, or waits for an operator."""
    post, findings = service.publish_post(session=session, user=user, post_id=post_id)
    return {"post": views.post_out(session, post, detail=True), "findings": findings}


@router.post("/posts/{post_id}/unpublish", response_model=PostDetail)
def unpublish_post(post_id: int, user: CurrentUser, session: DbSession):
    post = service.unpublish_post(session=session, user=user, post_id=post_id)
    return views.post_out(session, post, detail=True)


@router.delete("/posts/{post_id}", status_code=204)
def delete_post(post_id: int, user: CurrentUser, session: DbSession) -> Response:
    service.delete_post(session=session, user=user, post_id=post_id)
    return Response(status_code=204)


@router.get("/posts/{post_id}/versions", response_model=list[PostVersionOut])
def post_versions(post_id: int, user: CurrentUser, session: DbSession):
    return service.list_versions(session=session, user=user, post_id=post_id)


@router.get("/posts/{post_id}/moderation", response_model=list[AuditOut])
def post_moderation(post_id: int, user: CurrentUser, session: DbSession):
    """The moderation decisions on the caller's post, with reasons."""
    return service.post_decisions(session=session, user=user, post_id=post_id)


# --------------------------------------------------------------------------- moderation


@router.get("/moderation/cases", response_model=Page[CaseOut])
def list_cases(
    user: OperatorUser,
    session: DbSession,
    status: ModerationStatus | None = ModerationStatus.OPEN,
    limit: Limit = 50,
    offset: Offset = 0,
):
    """The moderation queue (open cases first-come first-served)."""
    items, total = service.list_cases(session=session, status=status, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/moderation/cases/{case_id}/approve", response_model=CaseOut)
def approve_case(case_id: int, body: ApproveCase, user: OperatorUser, session: DbSession):
    return service.decide_case(
        session=session, operator=user, case_id=case_id, approve=True, reason=body.reason
    )


@router.post("/moderation/cases/{case_id}/reject", response_model=CaseOut)
def reject_case(case_id: int, body: RejectBody, user: OperatorUser, session: DbSession):
    return service.decide_case(
        session=session, operator=user, case_id=case_id, approve=False, reason=body.reason
    )


@router.get("/moderation/audit", response_model=Page[AuditOut])
def audit_log(
    user: OperatorUser,
    session: DbSession,
    post_id: int | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
):
    items, total = service.audit_log(session=session, post_id=post_id, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/moderation/banned-terms", response_model=list[BannedTermOut])
def list_banned_terms(user: OperatorUser, session: DbSession):
    """Operators' additions (the shipped list is in ``content/data/banned_words.txt``)."""
    return service.list_banned_terms(session=session)


@router.post("/moderation/banned-terms", status_code=201, response_model=BannedTermOut)
def add_banned_term(body: BannedTermIn, user: OperatorUser, session: DbSession):
    return service.add_banned_term(session=session, operator=user, term=body.term)


@router.delete("/moderation/banned-terms/{term_id}", status_code=204)
def remove_banned_term(term_id: int, user: OperatorUser, session: DbSession) -> Response:
    service.remove_banned_term(session=session, term_id=term_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------- follows, inbox


@router.post("/follows", response_model=FollowOut)
def follow(body: FollowBody, user: CurrentUser, session: DbSession, response: Response):
    """Follow a creator (by user id) or a merchant; 201 the first time, 200 after."""
    row, created = service.follow(
        session=session, user=user, kind=body.target_kind, target_id=body.target_id
    )
    response.status_code = 201 if created else 200
    return row


@router.delete("/follows/{target_kind}/{target_id}", status_code=204)
def unfollow(
    target_kind: FollowTarget, target_id: int, user: CurrentUser, session: DbSession
) -> Response:
    service.unfollow(session=session, user=user, kind=target_kind, target_id=target_id)
    return Response(status_code=204)


@router.get("/follows", response_model=Page[FollowOut])
def list_follows(user: CurrentUser, session: DbSession, limit: Limit = 50, offset: Offset = 0):
    items, total = service.list_follows(session=session, user=user, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/inbox", response_model=InboxPage)
def inbox(
    user: CurrentUser,
    session: DbSession,
    unread_only: bool = False,
    limit: Limit = 20,
    offset: Offset = 0,
):
    """New posts and go-live notices from whom the caller follows, and moderation decisions."""
    items, total, unread = service.inbox(
        session=session, user=user, unread_only=unread_only, limit=limit, offset=offset
    )
    return {
        "items": [InboxItemOut.model_validate(i) for i in items],
        "total": total,
        "unread": unread,
        "limit": limit,
        "offset": offset,
    }


@router.post("/inbox/read")
def mark_read(body: MarkRead, user: CurrentUser, session: DbSession) -> dict[str, int]:
    return {"marked": service.mark_read(session=session, user=user, up_to_id=body.up_to_id)}


# --------------------------------------------------------------------------- live rooms


def _hub(request: Request) -> live.LiveHub:
    db: Database = request.app.state.db
    return live.get_hub(request.app, stock_probe=lambda room_id: _stock(db, room_id))


def _stock(db: Database, room_id: int) -> dict[str, object] | None:
    with db.session(write=False) as session:
        room = service.load_room(session, room_id)
        return views.stock_snapshot(views.room_out(session, room))


def _broadcast(
    background: BackgroundTasks, request: Request, room: LiveRoomOut, event: str
) -> None:
    # Runs after the response, i.e. after the unit of work committed.
    background.add_task(
        _hub(request).publish, room.id, event, views.pinned_event(room), room.revision
    )


@router.post("/live-rooms", status_code=201, response_model=LiveRoomOut)
def create_room(body: RoomCreate, user: CreatorUser, session: DbSession):
    """Schedule a live session with its products (live-only deal items allowed)."""
    room = service.create_room(session=session, user=user, data=body.data())
    return views.room_out(session, room)


@router.get("/live-rooms", response_model=Page[LiveRoomOut])
def list_rooms(
    session: DbSession,
    status: LiveRoomStatus | None = None,
    creator_id: int | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    items, total = service.list_rooms(
        session=session, status=status, creator_id=creator_id, limit=limit, offset=offset
    )
    return {
        "items": [views.room_out(session, r) for r in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/live-rooms/{room_id}", response_model=LiveRoomOut)
def get_room(room_id: int, request: Request, session: DbSession):
    room = service.load_room(session, room_id)
    return views.room_out(session, room, viewers=_hub(request).cached_viewers(room_id))


@router.post("/live-rooms/{room_id}/start", response_model=LiveRoomOut)
def start_room(
    room_id: int,
    request: Request,
    background: BackgroundTasks,
    user: CreatorUser,
    session: DbSession,
):
    """Go live; followers get a notice in their inbox, viewers a ``status`` event."""
    room = views.room_out(session, service.start_room(session=session, user=user, room_id=room_id))
    _broadcast(background, request, room, "status")
    return room


@router.post("/live-rooms/{room_id}/end", response_model=LiveRoomOut)
def end_room(
    room_id: int,
    request: Request,
    background: BackgroundTasks,
    user: CreatorUser,
    session: DbSession,
):
    room = views.room_out(session, service.end_room(session=session, user=user, room_id=room_id))
    _broadcast(background, request, room, "status")
    return room


@router.post("/live-rooms/{room_id}/pin", response_model=LiveRoomOut)
def pin_item(
    room_id: int,
    body: PinBody,
    request: Request,
    background: BackgroundTasks,
    user: CreatorUser,
    session: DbSession,
):
    """Pin a product (viewers get a ``pin`` event at once), or unpin with ``item_id: null``."""
    room = service.pin_item(session=session, user=user, room_id=room_id, item_id=body.item_id)
    out = views.room_out(session, room)
    _broadcast(background, request, out, "pin")
    return out


def _snapshot(db: Database, room_id: int, viewers: int) -> bytes:
    with db.session(write=False) as session:
        room = views.room_out(session, service.load_room(session, room_id), viewers=viewers)
    return live.encode("snapshot", room.model_dump(mode="json"), room.revision)


@router.get(
    "/live-rooms/{room_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def room_events(room_id: int, request: Request) -> StreamingResponse:
    """Server-sent events: ``snapshot`` first, then ``pin``, ``status`` and ``tick`` (viewers,
    stock left) as they happen. Public."""
    hub = _hub(request)
    db: Database = request.app.state.db
    # Subscribe before reading the snapshot, so no change falls between the two; clients
    # ignore events whose id is not above the snapshot's revision.
    queue = await hub.subscribe(room_id)
    try:
        first = await run_in_threadpool(_snapshot, db, room_id, hub.cached_viewers(room_id))
    except BaseException:
        await hub.unsubscribe(room_id, queue)
        raise
    return StreamingResponse(
        live.stream(hub, room_id, queue, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --------------------------------------------------------------------------- media


@router.post("/content/media", status_code=201, response_model=MediaOut)
async def upload_image(request: Request, user: CurrentUser, file: Annotated[UploadFile, File()]):
    """Upload an image (JPEG, PNG, WebP, GIF; checked by content; size-limited)."""
    settings = request.app.state.settings
    data = await file.read(settings.upload_max_bytes + 1)
    stored = await run_in_threadpool(
        media.store_image,
        data=data,
        data_dir=settings.data_dir,
        max_bytes=settings.upload_max_bytes,
    )
    return {
        "url": f"/api/v1/content/media/{stored.name}",
        "content_type": stored.content_type,
        "width": stored.width,
        "height": stored.height,
        "size_bytes": stored.size_bytes,
    }


@router.get("/content/media/{name}", response_class=FileResponse)
def get_image(name: str, request: Request) -> FileResponse:
    path, content_type = media.image_path(name=name, data_dir=request.app.state.settings.data_dir)
    return FileResponse(
        path,
        media_type=content_type,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
