"""Content business logic: creators (达人), posts, moderation, follows, inbox, live rooms.

Keyword-only functions; no HTTP objects; never commits (the request's unit of work does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, String, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from juxing.accounts import service as accounts
from juxing.content import cards as card_states
from juxing.content import moderation
from juxing.content.events import (
    CreatorApproved,
    Followed,
    LiveEnded,
    LiveStarted,
    PostPublished,
    PostWithdrawn,
    Unfollowed,
)
from juxing.content.markdown import plain_text, render_markdown
from juxing.kit.auth import ensure_owner
from juxing.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from juxing.kit.signals import publish
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.models.base import UTCDateTime
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.content import (
    CREATOR_LEVEL_NEW,
    CREATOR_LEVEL_TOP,
    ApplicationStatus,
    AuthorKind,
    BannedTerm,
    CreatorApplication,
    CreatorProfile,
    CreatorStatus,
    Follow,
    FollowTarget,
    InboxItem,
    InboxKind,
    LiveRoom,
    LiveRoomItem,
    LiveRoomStatus,
    ModerationAuditEntry,
    ModerationCase,
    ModerationStatus,
    Post,
    PostProductCard,
    PostStatus,
    PostType,
    PostVersion,
)
from juxing.models.deals import DealItem
from juxing.search import service as search
from juxing.search.service import DocumentKind

PUBLIC_STATUSES = frozenset({PostStatus.PUBLISHED})
EDITABLE_STATUSES = frozenset(
    {
        PostStatus.DRAFT,
        PostStatus.PENDING_REVIEW,
        PostStatus.PUBLISHED,
        PostStatus.REJECTED,
        PostStatus.UNPUBLISHED,
    }
)

# --------------------------------------------------------------------------- creators


def apply_as_creator(
    *, session: Session, user: User, handle: str, bio: str, pitch: str
) -> CreatorApplication:
    """A user asks to become a creator; an operator decides."""
    if session.get(CreatorProfile, user.id) is not None:
        raise Conflict("You are a creator already.", code="already_creator")
    pending = session.scalar(
        select(CreatorApplication.id).where(
            CreatorApplication.user_id == user.id,
            CreatorApplication.status == ApplicationStatus.PENDING,
        )
    )
    if pending is not None:
        raise Conflict("You have an application waiting already.", code="application_pending")
    _ensure_handle_free(session, handle)
    application = CreatorApplication(user_id=user.id, handle=handle, bio=bio, pitch=pitch)
    session.add(application)
    session.flush()
    return application


def _ensure_handle_free(session: Session, handle: str) -> None:
    taken = session.scalar(
        select(CreatorProfile.user_id).where(func.lower(CreatorProfile.handle) == handle.lower())
    )
    if taken is not None:
        raise Conflict(
            "That handle is taken.",
            code="handle_taken",
            details=[{"field": "body.handle", "message": "taken"}],
        )


def list_applications(
    *, session: Session, status: ApplicationStatus | None, limit: int, offset: int
) -> tuple[list[CreatorApplication], int]:
    """Creator applications for operators, oldest first."""
    stmt = select(CreatorApplication)
    if status is not None:
        stmt = stmt.where(CreatorApplication.status == status)
    return _page(session, stmt.order_by(CreatorApplication.id), limit, offset)


def my_applications(*, session: Session, user: User) -> list[CreatorApplication]:
    """The caller's own creator applications, newest first."""
    return list(
        session.scalars(
            select(CreatorApplication)
            .where(CreatorApplication.user_id == user.id)
            .order_by(CreatorApplication.id.desc())
        )
    )


def _pending_application(session: Session, application_id: int) -> CreatorApplication:
    application = session.scalar(
        select(CreatorApplication).where(CreatorApplication.id == application_id).with_for_update()
    )
    if application is None:
        raise NotFound("No such application.")
    if application.status != ApplicationStatus.PENDING:
        raise Conflict(
            f"The application is {application.status} already.", code="application_decided"
        )
    return application


def approve_application(
    *, session: Session, operator: User, application_id: int, level: int = CREATOR_LEVEL_NEW
) -> CreatorProfile:
    """Approve: create the creator profile and grant the creator role."""
    application = _pending_application(session, application_id)
    _ensure_handle_free(session, application.handle)
    user = accounts.get_user(session=session, user_id=application.user_id)
    now = utcnow()
    application.status = ApplicationStatus.APPROVED
    application.decided_by_id = operator.id
    application.decided_at = now
    profile = CreatorProfile(
        user_id=user.id,
        handle=application.handle,
        display_name=user.display_name,
        bio=application.bio,
        level=level,
        status=CreatorStatus.ACTIVE,
        approved_at=now,
        follower_count=0,
        post_count=0,
    )
    session.add(profile)
    accounts.grant_role(session=session, user=user, role=Role.CREATOR)
    session.flush()
    index_creator(session=session, profile=profile)
    publish(session, CreatorApproved(user_id=user.id))
    return profile


def reject_application(
    *, session: Session, operator: User, application_id: int, reason: str
) -> CreatorApplication:
    """Reject with a reason the applicant sees."""
    application = _pending_application(session, application_id)
    application.status = ApplicationStatus.REJECTED
    application.decision_reason = reason
    application.decided_by_id = operator.id
    application.decided_at = utcnow()
    session.flush()
    return application


def get_creator(*, session: Session, handle_or_id: str) -> CreatorProfile:
    """An active creator by handle or user id."""
    stmt = select(CreatorProfile)
    if handle_or_id.isdigit():
        stmt = stmt.where(CreatorProfile.user_id == int(handle_or_id))
    else:
        stmt = stmt.where(func.lower(CreatorProfile.handle) == handle_or_id.lower())
    profile = session.scalar(stmt)
    if profile is None or profile.status != CreatorStatus.ACTIVE:
        raise NotFound("No such creator.")
    return profile


def active_creator(*, session: Session, user: User) -> CreatorProfile:
    """The caller's creator profile; 403 if they are not an active creator."""
    profile = session.get(CreatorProfile, user.id)
    if profile is None or profile.status != CreatorStatus.ACTIVE:
        raise Forbidden(
            "This needs an approved creator profile; apply at /api/v1/creators/applications.",
            code="creator_profile_required",
        )
    return profile


def update_profile(*, session: Session, user: User, changes: dict[str, Any]) -> CreatorProfile:
    """Edit the caller's bio, display name or avatar."""
    profile = active_creator(session=session, user=user)
    for name in ("display_name", "bio", "avatar_url"):
        if name in changes:
            setattr(profile, name, changes[name])
    session.flush()
    index_creator(session=session, profile=profile)
    return profile


def set_level(*, session: Session, user_id: int, level: int) -> CreatorProfile:
    """Operators set a creator's level (1 new ... 5 top)."""
    if not CREATOR_LEVEL_NEW <= level <= CREATOR_LEVEL_TOP:
        raise Unprocessable("Creator levels run from 1 to 5.", code="invalid_level")
    profile = session.get(CreatorProfile, user_id)
    if profile is None:
        raise NotFound("No such creator.")
    profile.level = level
    session.flush()
    index_creator(session=session, profile=profile)
    return profile


def list_creators(
    *, session: Session, limit: int, offset: int, min_level: int | None = None
) -> tuple[list[CreatorProfile], int]:
    """Active creators, most followed first."""
    stmt = select(CreatorProfile).where(CreatorProfile.status == CreatorStatus.ACTIVE)
    if min_level is not None:
        stmt = stmt.where(CreatorProfile.level >= min_level)
    stmt = stmt.order_by(CreatorProfile.follower_count.desc(), CreatorProfile.user_id)
    return _page(session, stmt, limit, offset)


def recommended_products(
    *, session: Session, author_id: int, limit: int = 20
) -> list[PostProductCard]:
    """The products a creator recommends: the latest card per product in public posts."""
    latest = (
        select(func.max(PostProductCard.id))
        .join(Post, Post.id == PostProductCard.post_id)
        .where(Post.author_id == author_id, Post.status == PostStatus.PUBLISHED)
        .group_by(PostProductCard.product_id)
    )
    return list(
        session.scalars(
            select(PostProductCard)
            .where(PostProductCard.id.in_(latest))
            .order_by(PostProductCard.id.desc())
            .limit(limit)
        )
    )


def index_creator(*, session: Session, profile: CreatorProfile) -> None:
    if profile.status != CreatorStatus.ACTIVE:
        search.remove_document(session=session, kind=DocumentKind.CREATOR, ref_id=profile.user_id)
        return
    search.index_document(
        session=session,
        kind=DocumentKind.CREATOR,
        ref_id=profile.user_id,
        title=profile.display_name,
        texts=(profile.handle, profile.bio),
        snippet=profile.bio,
        boost=profile.level,
    )


# --------------------------------------------------------------------------- posts


def _author_for(
    session: Session, user: User, merchant_id: int | None
) -> tuple[AuthorKind, int | None]:
    if merchant_id is not None:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None or not user.has_role(Role.MERCHANT):
            raise NotFound("No such merchant.")
        ensure_owner(merchant.owner_id, user, operator_may=False, what="merchant")
        return AuthorKind.MERCHANT, merchant_id
    active_creator(session=session, user=user)
    return AuthorKind.CREATOR, None


def _validate_cards(
    session: Session, cards: Sequence[dict[str, Any]], *, merchant_id: int | None
) -> None:
    """Each card names a product that exists, and a SKU / deal item of that product."""
    product_ids = {c["product_id"] for c in cards}
    found = dict(
        session.execute(
            select(Product.id, Product.merchant_id).where(Product.id.in_(product_ids))
        ).all()
    )
    sku_ids = {c["sku_id"] for c in cards if c.get("sku_id") is not None}
    sku_product = dict(
        session.execute(select(Sku.id, Sku.product_id).where(Sku.id.in_(sku_ids))).all()
    )
    deal_ids = {c["deal_item_id"] for c in cards if c.get("deal_item_id") is not None}
    deal_product = dict(
        session.execute(
            select(DealItem.id, DealItem.product_id).where(DealItem.id.in_(deal_ids))
        ).all()
    )
    problems = []
    for i, card in enumerate(cards):
        where = f"body.cards.{i}"
        pid = card["product_id"]
        if pid not in found:
            problems.append({"field": f"{where}.product_id", "message": "no such product"})
            continue
        if merchant_id is not None and found[pid] != merchant_id:
            problems.append(
                {"field": f"{where}.product_id", "message": "a shop post shows its own products"}
            )
        if card.get("sku_id") is not None and sku_product.get(card["sku_id"]) != pid:
            problems.append({"field": f"{where}.sku_id", "message": "not a SKU of this product"})
        if card.get("deal_item_id") is not None and deal_product.get(card["deal_item_id"]) != pid:
            problems.append(
                {"field": f"{where}.deal_item_id", "message": "not a deal item of this product"}
            )
    if problems:
        raise Unprocessable(
            "Some product cards are not valid.", code="invalid_cards", details=problems
        )


def _set_cards(post: Post, cards: Sequence[dict[str, Any]]) -> None:
    post.cards.clear()
    for position, card in enumerate(cards):
        post.cards.append(
            PostProductCard(
                position=position,
                product_id=card["product_id"],
                sku_id=card.get("sku_id"),
                deal_item_id=card.get("deal_item_id"),
                note=card.get("note", ""),
            )
        )


def _snapshot(session: Session, post: Post, editor: User) -> None:
    session.add(
        PostVersion(
            post_id=post.id,
            version=post.version,
            title=post.title,
            summary=post.summary,
            body_markdown=post.body_markdown,
            video_url=post.video_url,
            cover_image_url=post.cover_image_url,
            cards=[
                {
                    "product_id": c.product_id,
                    "sku_id": c.sku_id,
                    "deal_item_id": c.deal_item_id,
                    "note": c.note,
                }
                for c in post.cards
            ],
            edited_by_id=editor.id,
        )
    )


def _check_type_fields(data: dict[str, Any]) -> None:
    kind = data.get("type")
    if kind == PostType.VIDEO and not data.get("video_url"):
        raise Unprocessable(
            "A video post needs a video_url.",
            code="video_url_required",
            details=[{"field": "body.video_url", "message": "required for video posts"}],
        )
    if kind == PostType.LIST and not data.get("cards"):
        raise Unprocessable(
            "A list post needs at least one product card.",
            code="cards_required",
            details=[{"field": "body.cards", "message": "required for list posts"}],
        )


def create_post(*, session: Session, user: User, data: dict[str, Any]) -> Post:
    """Create a draft (version 1) by a creator, or a shop post by a merchant."""
    author_kind, merchant_id = _author_for(session, user, data.get("merchant_id"))
    _check_type_fields(data)
    cards = data.get("cards") or []
    _validate_cards(session, cards, merchant_id=merchant_id)
    post = Post(
        author_id=user.id,
        author_kind=author_kind,
        merchant_id=merchant_id,
        type=data["type"],
        title=data["title"],
        summary=data.get("summary") or "",
        body_markdown=data.get("body_markdown") or "",
        body_html=render_markdown(data.get("body_markdown") or ""),
        video_url=data.get("video_url"),
        cover_image_url=data.get("cover_image_url"),
        category_id=data.get("category_id"),
        live_room_id=data.get("live_room_id"),
        status=PostStatus.DRAFT,
        version=1,
    )
    post.cards = []
    _set_cards(post, cards)
    session.add(post)
    session.flush()
    _snapshot(session, post, user)
    session.flush()
    return post


def load_post(session: Session, post_id: int, *, for_update: bool = False) -> Post:
    stmt = select(Post).where(Post.id == post_id).options(selectinload(Post.cards))
    if for_update:
        stmt = stmt.with_for_update()
    post = session.scalar(stmt)
    if post is None or post.status == PostStatus.DELETED:
        raise NotFound("No such post.")
    return post


def _own_post(session: Session, user: User, post_id: int) -> Post:
    post = load_post(session, post_id, for_update=True)
    ensure_owner(post.author_id, user, operator_may=False, what="post")
    return post


def get_post(*, session: Session, post_id: int, viewer: User | None) -> Post:
    """A public post, or any of the viewer's own posts (operators see all)."""
    post = load_post(session, post_id)
    if post.status in PUBLIC_STATUSES:
        return post
    if viewer is None:
        raise NotFound("No such post.")
    ensure_owner(post.author_id, viewer, what="post")
    return post


def update_post(*, session: Session, user: User, post_id: int, changes: dict[str, Any]) -> Post:
    """Edit a post: the version goes up, the old one is kept; a public post is checked
    again before the edit shows."""
    post = _own_post(session, user, post_id)
    if post.status not in EDITABLE_STATUSES:
        raise Conflict("This post can no longer be edited.", code="post_not_editable")
    merged = {
        "type": post.type,
        "video_url": changes.get("video_url", post.video_url),
        "cards": changes.get("cards", [1] if post.cards else []),
    }
    _check_type_fields(merged)
    if "cards" in changes:
        _validate_cards(session, changes["cards"] or [], merchant_id=post.merchant_id)
        _set_cards(post, changes["cards"] or [])
    for name in ("title", "summary", "video_url", "cover_image_url", "category_id"):
        if name in changes:
            setattr(post, name, changes[name] if name != "summary" else changes[name] or "")
    if "body_markdown" in changes:
        post.body_markdown = changes["body_markdown"] or ""
        post.body_html = render_markdown(post.body_markdown)
    post.version += 1
    session.flush()
    _snapshot(session, post, user)
    session.flush()
    if post.status in {PostStatus.PUBLISHED, PostStatus.PENDING_REVIEW}:
        _submit(session, post, user)
    return post


def list_versions(*, session: Session, user: User, post_id: int) -> list[PostVersion]:
    """Every saved version of the caller's post, newest first."""
    post = load_post(session, post_id)
    ensure_owner(post.author_id, user, what="post")
    return list(
        session.scalars(
            select(PostVersion)
            .where(PostVersion.post_id == post_id)
            .order_by(PostVersion.version.desc())
        )
    )


def publish_post(
    *, session: Session, user: User, post_id: int
) -> tuple[Post, list[dict[str, Any]]]:
    """Run the automatic checks: publish, or queue the post for an operator."""
    post = _own_post(session, user, post_id)
    if post.status == PostStatus.PUBLISHED:
        return post, []
    return post, _submit(session, post, user)


def _submit(session: Session, post: Post, actor: User) -> list[dict[str, Any]]:
    findings = [f.as_dict() for f in run_checks(session=session, post=post)]
    # A newer version replaces any case still waiting for the older one.
    session.execute(
        update(ModerationCase)
        .where(ModerationCase.post_id == post.id, ModerationCase.status == ModerationStatus.OPEN)
        .values(status="superseded", updated_at=utcnow())
    )
    if findings:
        case = ModerationCase(
            post_id=post.id, post_version=post.version, status=ModerationStatus.OPEN,
            findings=findings,
        )  # fmt: skip
        session.add(case)
        session.flush()
        was_public = post.status == PostStatus.PUBLISHED
        post.status = PostStatus.PENDING_REVIEW
        post.moderation_note = "Waiting for review: " + "; ".join(f["message"] for f in findings)
        _audit(session, post, case_id=case.id, actor=None, action="auto_flag", findings=findings)
        if was_public:
            _withdraw(session, post)
    else:
        _audit(session, post, case_id=None, actor=None, action="auto_pass", findings=[])
        _go_public(session, post)
    session.flush()
    return findings


def run_checks(*, session: Session, post: Post) -> list[moderation.Finding]:
    """The automatic moderation checks over the post as it is now."""
    views = card_states.resolve(
        session=session, refs=post.cards, substitutes=False, record_prices=True
    ) if post.cards else []  # fmt: skip
    facts = [
        moderation.CardFacts(
            product_id=v.product_id, status=v.status, current_price_minor=v.current_price_minor
        )
        for v in views
    ]
    lowest = card_states.lowest_seen(session=session, product_ids=[v.product_id for v in views])
    texts = [post.title, post.summary, post.body_markdown, *(c.note for c in post.cards)]
    return moderation.check_post(
        texts=texts, cards=facts, banned_terms=banned_terms(session=session), lowest_seen=lowest
    )


def _go_public(session: Session, post: Post) -> None:
    first_time = post.published_at is None
    post.status = PostStatus.PUBLISHED
    post.moderation_note = None
    if first_time:
        post.published_at = utcnow()
        if post.author_kind == AuthorKind.CREATOR:
            session.execute(
                update(CreatorProfile)
                .where(CreatorProfile.user_id == post.author_id)
                .values(post_count=CreatorProfile.post_count + 1)
            )
        _notify_followers(session, post)
    session.flush()
    index_post(session=session, post=post)
    publish(session, PostPublished(post_id=post.id, author_id=post.author_id))


def _withdraw(session: Session, post: Post) -> None:
    search.remove_document(session=session, kind=DocumentKind.POST, ref_id=post.id)
    publish(session, PostWithdrawn(post_id=post.id))


def unpublish_post(*, session: Session, user: User, post_id: int) -> Post:
    """Take a public post down (it can be published again)."""
    post = _own_post(session, user, post_id)
    if post.status not in {PostStatus.PUBLISHED, PostStatus.PENDING_REVIEW}:
        raise Conflict(f"The post is {post.status}.", code="post_not_published")
    was_public = post.status == PostStatus.PUBLISHED
    post.status = PostStatus.UNPUBLISHED
    session.flush()
    if was_public:
        _withdraw(session, post)
    return post


def delete_post(*, session: Session, user: User, post_id: int) -> None:
    """Delete a post (kept for the audit log, gone for everyone else)."""
    post = _own_post(session, user, post_id)
    was_public = post.status == PostStatus.PUBLISHED
    post.status = PostStatus.DELETED
    session.flush()
    if was_public:
        _withdraw(session, post)


def list_posts(
    *,
    session: Session,
    limit: int,
    offset: int,
    author_id: int | None = None,
    merchant_id: int | None = None,
    post_type: PostType | None = None,
) -> tuple[list[Post], int]:
    """Public posts, newest first."""
    stmt = select(Post).where(Post.status == PostStatus.PUBLISHED)
    if author_id is not None:
        stmt = stmt.where(Post.author_id == author_id)
    if merchant_id is not None:
        stmt = stmt.where(Post.merchant_id == merchant_id)
    if post_type is not None:
        stmt = stmt.where(Post.type == post_type)
    stmt = stmt.options(selectinload(Post.cards)).order_by(Post.published_at.desc(), Post.id.desc())
    return _page(session, stmt, limit, offset)


def my_posts(
    *, session: Session, user: User, status: PostStatus | None, limit: int, offset: int
) -> tuple[list[Post], int]:
    """The caller's own posts in any state but deleted, newest first."""
    stmt = select(Post).where(Post.author_id == user.id, Post.status != PostStatus.DELETED)
    if status is not None:
        stmt = stmt.where(Post.status == status)
    stmt = stmt.options(selectinload(Post.cards)).order_by(Post.id.desc())
    return _page(session, stmt, limit, offset)


def index_post(*, session: Session, post: Post) -> None:
    """Put a public post into the search index (with its cards' price and deal window)."""
    views = (
        card_states.resolve(session=session, refs=post.cards, substitutes=False)
        if post.cards
        else []
    )
    prices = [v.current_price_minor for v in views if v.current_price_minor is not None]
    live = [v for v in views if v.starts_at is not None and v.ends_at is not None]
    author = session.get(CreatorProfile, post.author_id)
    body = plain_text(post.body_markdown)
    search.index_document(
        session=session,
        kind=DocumentKind.POST,
        ref_id=post.id,
        title=post.title,
        texts=(post.summary, body, *(c.note for c in post.cards), *(v.title for v in views)),
        snippet=post.summary or body,
        category_id=post.category_id,
        price_minor=min(prices) if prices else None,
        currency=views[0].currency if views else None,
        deal_starts_at=min(v.starts_at for v in live) if live else None,  # type: ignore[type-var]
        deal_ends_at=max(v.ends_at for v in live) if live else None,  # type: ignore[type-var]
        boost=author.level if author is not None else 0,
    )


# --------------------------------------------------------------------------- moderation


def banned_terms(*, session: Session) -> frozenset[str]:
    """The shipped list plus the operators' additions, lower-cased."""
    extra = session.scalars(select(BannedTerm.term))
    return moderation.shipped_banned_terms() | {t.lower() for t in extra}


def list_banned_terms(*, session: Session) -> list[BannedTerm]:
    return list(session.scalars(select(BannedTerm).order_by(BannedTerm.term)))


def add_banned_term(*, session: Session, operator: User, term: str) -> BannedTerm:
    """Operators add a banned word or phrase."""
    term = term.strip().lower()
    if session.scalar(select(BannedTerm).where(BannedTerm.term == term)) is not None:
        raise Conflict("That term is banned already.", code="term_exists")
    row = BannedTerm(term=term, added_by_id=operator.id)
    session.add(row)
    session.flush()
    return row


def remove_banned_term(*, session: Session, term_id: int) -> None:
    if session.execute(delete(BannedTerm).where(BannedTerm.id == term_id)).rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("No such term.")


def _audit(
    session: Session,
    post: Post,
    *,
    case_id: int | None,
    actor: User | None,
    action: str,
    findings: list[dict[str, Any]],
    reason: str | None = None,
) -> None:
    session.add(
        ModerationAuditEntry(
            post_id=post.id,
            post_version=post.version,
            case_id=case_id,
            actor_id=actor.id if actor else None,
            action=action,
            reason=reason,
            findings=findings,
        )
    )


def list_cases(
    *, session: Session, status: str | None, limit: int, offset: int
) -> tuple[list[ModerationCase], int]:
    """The moderation queue, oldest first."""
    stmt = select(ModerationCase)
    if status is not None:
        stmt = stmt.where(ModerationCase.status == status)
    return _page(session, stmt.order_by(ModerationCase.id), limit, offset)


def decide_case(
    *, session: Session, operator: User, case_id: int, approve: bool, reason: str | None
) -> ModerationCase:
    """An operator approves (the post goes live) or rejects (with a reason the author sees)."""
    case = session.scalar(
        select(ModerationCase).where(ModerationCase.id == case_id).with_for_update()
    )
    if case is None:
        raise NotFound("No such moderation case.")
    if case.status != ModerationStatus.OPEN:
        raise Conflict(f"The case is {case.status} already.", code="case_decided")
    post = load_post(session, case.post_id, for_update=True)
    case.status = ModerationStatus.APPROVED if approve else ModerationStatus.REJECTED
    case.decided_by_id = operator.id
    case.decided_at = utcnow()
    case.reason = reason
    _audit(
        session,
        post,
        case_id=case.id,
        actor=operator,
        action="approve" if approve else "reject",
        findings=case.findings,
        reason=reason,
    )
    if approve:
        _go_public(session, post)
        post.moderation_note = reason
        message = f"Your post “{post.title}” was approved."
    else:
        post.status = PostStatus.REJECTED
        post.moderation_note = reason
        message = f"Your post “{post.title}” was rejected: {reason}"
    session.add(
        InboxItem(
            user_id=post.author_id,
            kind=InboxKind.MODERATION,
            post_id=post.id,
            actor_id=operator.id,
            message=message[:500],
        )
    )
    session.flush()
    return case


def audit_log(
    *, session: Session, post_id: int | None, limit: int, offset: int
) -> tuple[list[ModerationAuditEntry], int]:
    """Every moderation decision, newest first."""
    stmt = select(ModerationAuditEntry)
    if post_id is not None:
        stmt = stmt.where(ModerationAuditEntry.post_id == post_id)
    return _page(session, stmt.order_by(ModerationAuditEntry.id.desc()), limit, offset)


def post_decisions(*, session: Session, user: User, post_id: int) -> list[ModerationAuditEntry]:
    """The moderation decisions on the caller's own post (authors see why)."""
    post = load_post(session, post_id)
    ensure_owner(post.author_id, user, what="post")
    return list(
        session.scalars(
            select(ModerationAuditEntry)
            .where(ModerationAuditEntry.post_id == post_id)
            .order_by(ModerationAuditEntry.id)
        )
    )


# --------------------------------------------------------------------------- follows


def _target_exists(session: Session, kind: FollowTarget, target_id: int) -> bool:
    if kind == FollowTarget.CREATOR:
        profile = session.get(CreatorProfile, target_id)
        return profile is not None and profile.status == CreatorStatus.ACTIVE
    return session.get(Merchant, target_id) is not None


def follow(
    *, session: Session, user: User, kind: FollowTarget, target_id: int
) -> tuple[Follow, bool]:
    """Follow a creator or merchant; following twice is a no-op. Returns (follow, created)."""
    if not _target_exists(session, kind, target_id):
        raise NotFound(f"No such {kind}.")
    if kind == FollowTarget.CREATOR and target_id == user.id:
        raise Unprocessable("You cannot follow yourself.", code="self_follow")
    existing = session.scalar(
        select(Follow).where(
            Follow.follower_id == user.id, Follow.target_kind == kind, Follow.target_id == target_id
        )
    )
    if existing is not None:
        return existing, False
    row = Follow(follower_id=user.id, target_kind=kind, target_id=target_id)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # a concurrent duplicate won
        existing = session.scalar(
            select(Follow).where(
                Follow.follower_id == user.id,
                Follow.target_kind == kind,
                Follow.target_id == target_id,
            )
        )
        assert existing is not None
        return existing, False
    if kind == FollowTarget.CREATOR:
        session.execute(
            update(CreatorProfile)
            .where(CreatorProfile.user_id == target_id)
            .values(follower_count=CreatorProfile.follower_count + 1)
        )
    publish(session, Followed(follower_id=user.id, target_kind=kind, target_id=target_id))
    return row, True


def unfollow(*, session: Session, user: User, kind: FollowTarget, target_id: int) -> None:
    """Stop following; unknown follows are 404."""
    result = session.execute(
        delete(Follow).where(
            Follow.follower_id == user.id, Follow.target_kind == kind, Follow.target_id == target_id
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("You do not follow that.")
    if kind == FollowTarget.CREATOR:
        session.execute(
            update(CreatorProfile)
            .where(CreatorProfile.user_id == target_id, CreatorProfile.follower_count > 0)
            .values(follower_count=CreatorProfile.follower_count - 1)
        )
    publish(session, Unfollowed(follower_id=user.id, target_kind=kind, target_id=target_id))


def list_follows(
    *, session: Session, user: User, limit: int, offset: int
) -> tuple[list[Follow], int]:
    stmt = select(Follow).where(Follow.follower_id == user.id).order_by(Follow.id.desc())
    return _page(session, stmt, limit, offset)


def _follower_ids_stmt(post_or_room_author: int, merchant_id: int | None) -> Select:
    if merchant_id is not None:
        return select(Follow.follower_id).where(
            Follow.target_kind == FollowTarget.MERCHANT, Follow.target_id == merchant_id
        )
    return select(Follow.follower_id).where(
        Follow.target_kind == FollowTarget.CREATOR, Follow.target_id == post_or_room_author
    )


def _fan_out(
    session: Session,
    *,
    followers: Select,
    kind: InboxKind,
    actor_id: int,
    post_id: int | None,
    live_room_id: int | None,
    message: str,
) -> None:
    """One INSERT ... SELECT: an inbox item for every follower, however many."""
    now = utcnow()
    source = followers.add_columns(
        literal(kind.value, String()),
        literal(actor_id, BigInteger()),
        literal(post_id, BigInteger()),
        literal(live_room_id, BigInteger()),
        literal(message[:500], String()),
        literal(now, UTCDateTime()),
    )
    session.execute(
        insert(InboxItem).from_select(
            ["user_id", "kind", "actor_id", "post_id", "live_room_id", "message", "created_at"],
            source,
        )
    )


def _notify_followers(session: Session, post: Post) -> None:
    _fan_out(
        session,
        followers=_follower_ids_stmt(post.author_id, post.merchant_id),
        kind=InboxKind.NEW_POST,
        actor_id=post.author_id,
        post_id=post.id,
        live_room_id=None,
        message=post.title,
    )


def inbox(
    *, session: Session, user: User, unread_only: bool, limit: int, offset: int
) -> tuple[list[InboxItem], int, int]:
    """The caller's inbox, newest first; returns (items, total, unread)."""
    stmt = select(InboxItem).where(InboxItem.user_id == user.id)
    if unread_only:
        stmt = stmt.where(InboxItem.read_at.is_(None))
    items, total = _page(session, stmt.order_by(InboxItem.id.desc()), limit, offset)
    unread = session.scalar(
        select(func.count()).where(InboxItem.user_id == user.id, InboxItem.read_at.is_(None))
    )
    return items, total, int(unread or 0)


def mark_read(*, session: Session, user: User, up_to_id: int | None) -> int:
    """Mark the caller's inbox read (up to an id); returns how many changed."""
    stmt = (
        update(InboxItem)
        .where(InboxItem.user_id == user.id, InboxItem.read_at.is_(None))
        .values(read_at=utcnow())
    )
    if up_to_id is not None:
        stmt = stmt.where(InboxItem.id <= up_to_id)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- live rooms


def _validate_room_items(session: Session, items: Sequence[dict[str, Any]]) -> None:
    _validate_cards(session, items, merchant_id=None)
    problems = [
        {"field": f"body.items.{i}.live_only", "message": "live-only items must be deal items"}
        for i, item in enumerate(items)
        if item.get("live_only") and item.get("deal_item_id") is None
    ]
    if problems:
        raise Unprocessable(
            "Some live-room items are not valid.", code="invalid_items", details=problems
        )


def create_room(*, session: Session, user: User, data: dict[str, Any]) -> LiveRoom:
    """A creator schedules a live session with its products."""
    active_creator(session=session, user=user)
    items = data.get("items") or []
    _validate_room_items(session, items)
    room = LiveRoom(
        creator_id=user.id,
        title=data["title"],
        description=data.get("description") or "",
        cover_image_url=data.get("cover_image_url"),
        scheduled_at=data["scheduled_at"],
        status=LiveRoomStatus.SCHEDULED,
        revision=0,
        peak_viewers=0,
    )
    room.items = [
        LiveRoomItem(
            position=i,
            product_id=item["product_id"],
            sku_id=item.get("sku_id"),
            deal_item_id=item.get("deal_item_id"),
            note=item.get("note", ""),
            live_only=bool(item.get("live_only")),
        )
        for i, item in enumerate(items)
    ]
    session.add(room)
    session.flush()
    return room


def load_room(session: Session, room_id: int, *, for_update: bool = False) -> LiveRoom:
    stmt = select(LiveRoom).where(LiveRoom.id == room_id).options(selectinload(LiveRoom.items))
    if for_update:
        stmt = stmt.with_for_update()
    room = session.scalar(stmt)
    if room is None:
        raise NotFound("No such live room.")
    return room


def _own_room(session: Session, user: User, room_id: int) -> LiveRoom:
    room = load_room(session, room_id, for_update=True)
    ensure_owner(room.creator_id, user, operator_may=False, what="live room")
    return room


def start_room(*, session: Session, user: User, room_id: int) -> LiveRoom:
    """Go live: followers get a go-live notice in their inbox."""
    room = _own_room(session, user, room_id)
    if room.status != LiveRoomStatus.SCHEDULED:
        raise Conflict(f"The room is {room.status}.", code="room_not_scheduled")
    room.status = LiveRoomStatus.LIVE
    room.started_at = utcnow()
    room.revision += 1
    _fan_out(
        session,
        followers=_follower_ids_stmt(room.creator_id, None),
        kind=InboxKind.LIVE_STARTED,
        actor_id=room.creator_id,
        post_id=None,
        live_room_id=room.id,
        message=room.title,
    )
    session.flush()
    publish(session, LiveStarted(room_id=room.id, creator_id=room.creator_id))
    return room


def end_room(*, session: Session, user: User, room_id: int) -> LiveRoom:
    room = _own_room(session, user, room_id)
    if room.status != LiveRoomStatus.LIVE:
        raise Conflict(f"The room is {room.status}.", code="room_not_live")
    room.status = LiveRoomStatus.ENDED
    room.ended_at = utcnow()
    room.pinned_item_id = None
    room.revision += 1
    session.flush()
    publish(session, LiveEnded(room_id=room.id))
    return room


def pin_item(*, session: Session, user: User, room_id: int, item_id: int | None) -> LiveRoom:
    """Pin one of the room's products (or unpin with None) while scheduled or live."""
    room = _own_room(session, user, room_id)
    if room.status == LiveRoomStatus.ENDED:
        raise Conflict("The room has ended.", code="room_ended")
    if item_id is not None and item_id not in {i.id for i in room.items}:
        raise Unprocessable(
            "That product is not in this room.",
            code="not_in_room",
            details=[{"field": "body.item_id", "message": "not an item of this room"}],
        )
    room.pinned_item_id = item_id
    room.revision += 1
    session.flush()
    return room


def list_rooms(
    *,
    session: Session,
    status: LiveRoomStatus | None,
    creator_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[LiveRoom], int]:
    stmt = select(LiveRoom).options(selectinload(LiveRoom.items))
    if status is not None:
        stmt = stmt.where(LiveRoom.status == status)
    if creator_id is not None:
        stmt = stmt.where(LiveRoom.creator_id == creator_id)
    return _page(
        session, stmt.order_by(LiveRoom.scheduled_at.desc(), LiveRoom.id.desc()), limit, offset
    )


def record_peak_viewers(*, session: Session, room_id: int, viewers: int) -> None:
    session.execute(
        update(LiveRoom)
        .where(LiveRoom.id == room_id, LiveRoom.peak_viewers < viewers)
        .values(peak_viewers=viewers)
    )


def stale_live_rooms(*, session: Session, older_than: timedelta) -> list[int]:
    """Live rooms started more than ``older_than`` ago (the sweep ends them)."""
    cutoff = utcnow() - older_than
    return list(
        session.scalars(
            select(LiveRoom.id).where(
                LiveRoom.status == LiveRoomStatus.LIVE, LiveRoom.started_at < cutoff
            )
        )
    )


# --------------------------------------------------------------------------- helpers


def _page(session: Session, stmt: Select, limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(stmt.limit(limit).offset(offset)).unique())
    return items, int(total)
