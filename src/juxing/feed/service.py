"""Feed business logic: ingest behaviour events, manage traffic policies, preview them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from juxing.feed import events as event_store
from juxing.feed.engine import FeedEngine
from juxing.feed.ranking import exposure_summary
from juxing.feed.schemas import (
    EventBatchResult,
    EventError,
    EventIn,
    ExposureSummary,
    PolicyIn,
    PolicyRules,
    PolicyUpdate,
    PreviewOut,
)
from juxing.kit.errors import Conflict, NotFound
from juxing.kit.time import ensure_utc, utcnow
from juxing.models.accounts import Role, User, UserRole
from juxing.models.feed import FeedModelVersion, TrafficPolicy

MAX_CLOCK_SKEW = timedelta(minutes=5)


# --- behaviour events --------------------------------------------------------------------------


def ingest_events(
    *, session: Session, user_id: int, raw_events: list[dict[str, Any]]
) -> EventBatchResult:
    """Store a batch of the user's events; invalid ones are reported, valid ones kept.

    Idempotent per ``client_event_id``: a retried batch stores nothing twice.
    """
    now = utcnow()
    rows: list[dict[str, Any]] = []
    errors: list[EventError] = []
    batch_ids: set[str] = set()
    in_batch_dupes = 0
    for index, raw in enumerate(raw_events):
        cid = raw.get("client_event_id") if isinstance(raw, dict) else None
        cid = cid if isinstance(cid, str) else None
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as exc:
            errors.append(EventError(index=index, client_event_id=cid, errors=_errors(exc, index)))
            continue
        occurred = ensure_utc(event.occurred_at) if event.occurred_at else now
        if occurred > now + MAX_CLOCK_SKEW:
            errors.append(
                EventError(
                    index=index,
                    client_event_id=event.client_event_id,
                    errors=[
                        {
                            "field": f"body.events.{index}.occurred_at",
                            "message": "occurred_at is in the future",
                            "type": "future_timestamp",
                        }
                    ],
                )
            )
            continue
        if event.client_event_id in batch_ids:
            in_batch_dupes += 1
            continue
        batch_ids.add(event.client_event_id)
        rows.append(
            {
                "source": "app",
                "user_id": user_id,
                "action": event.action.value,
                "target_type": event.target_type.value,
                "target_id": event.target_id,
                "category_id": None,
                "dwell_ms": event.dwell_ms,
                "client_event_id": event.client_event_id,
                "occurred_at": occurred,
                "received_at": now,
            }
        )
    inserted = event_store.insert_new(session, rows)
    return EventBatchResult(
        accepted=len(inserted),
        duplicates=len(rows) - len(inserted) + in_batch_dupes,
        rejected=len(errors),
        errors=errors,
    )


def record_event(
    *,
    session: Session,
    user_id: int,
    action: str,
    target_type: str,
    target_id: int,
    client_event_id: str,
) -> None:
    """Record one server-side event (from another domain's signal), idempotently."""
    now = utcnow()
    event_store.insert_new(
        session,
        [
            {
                "source": "app",
                "user_id": user_id,
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "category_id": None,
                "dwell_ms": None,
                "client_event_id": client_event_id,
                "occurred_at": now,
                "received_at": now,
            }
        ],
    )


def _errors(exc: ValidationError, index: int) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(["body", "events", str(index), *(str(p) for p in e["loc"])]),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors()
    ]


# --- traffic policies --------------------------------------------------------------------------


def list_policies(*, session: Session) -> list[TrafficPolicy]:
    """Every traffic policy, the active one first."""
    stmt = select(TrafficPolicy).order_by(TrafficPolicy.is_active.desc(), TrafficPolicy.name)
    return list(session.scalars(stmt))


def get_policy(*, session: Session, policy_id: int) -> TrafficPolicy:
    """One policy or 404."""
    policy = session.get(TrafficPolicy, policy_id)
    if policy is None:
        raise NotFound("No such traffic policy.")
    return policy


def active_policy(*, session: Session) -> TrafficPolicy | None:
    """The policy the feed applies now, if any."""
    stmt = select(TrafficPolicy).where(TrafficPolicy.is_active.is_(True)).limit(1)
    return session.scalar(stmt)


def create_policy(*, session: Session, data: PolicyIn, operator: User) -> TrafficPolicy:
    """Save a new policy (409 if the name is taken); optionally make it the active one."""
    if session.scalar(select(TrafficPolicy.id).where(TrafficPolicy.name == data.name)):
        raise Conflict("A traffic policy with this name exists.", code="policy_name_taken")
    policy = TrafficPolicy(
        name=data.name,
        description=data.description,
        rules=data.rules.model_dump(mode="json"),
        is_active=False,
        version=1,
        updated_by_id=operator.id,
    )
    session.add(policy)
    session.flush()
    if data.activate:
        activate_policy(session=session, policy_id=policy.id, operator=operator)
    return policy


def update_policy(
    *, session: Session, policy_id: int, data: PolicyUpdate, operator: User
) -> TrafficPolicy:
    """Change a policy's rules or description; serving picks the new version up."""
    policy = get_policy(session=session, policy_id=policy_id)
    if data.description is not None:
        policy.description = data.description
    if data.rules is not None:
        policy.rules = data.rules.model_dump(mode="json")
    policy.version += 1
    policy.updated_by_id = operator.id
    session.flush()
    return policy


def activate_policy(*, session: Session, policy_id: int, operator: User) -> TrafficPolicy:
    """Make this policy the only active one."""
    policy = get_policy(session=session, policy_id=policy_id)
    session.execute(
        update(TrafficPolicy)
        .where(TrafficPolicy.is_active.is_(True), TrafficPolicy.id != policy.id)
        .values(is_active=False)
    )
    policy.is_active = True
    policy.version += 1
    policy.updated_by_id = operator.id
    policy.updated_at = utcnow()
    session.flush()
    return policy


def deactivate_policies(*, session: Session) -> None:
    """Turn the traffic policy off: the feed becomes pure relevance."""
    session.execute(
        update(TrafficPolicy).where(TrafficPolicy.is_active.is_(True)).values(is_active=False)
    )


def ensure_default_policy(*, session: Session, operator: User | None = None) -> TrafficPolicy:
    """The default long-tail policy, created and activated if no policy exists."""
    existing = active_policy(session=session)
    if existing is not None:
        return existing
    policy = TrafficPolicy(
        name="longtail",
        description="Default: a quarter of every feed for long-tail shops, a tenth for new "
        "creators, diversity caps and one exploration slot per 20 items.",
        rules=PolicyRules().model_dump(mode="json"),
        is_active=True,
        version=1,
        updated_by_id=operator.id if operator else None,
    )
    session.add(policy)
    session.flush()
    return policy


def preview_policy(
    *, session: Session, engine: FeedEngine, rules: PolicyRules, sample_users: int
) -> PreviewOut:
    """Simulate the feeds of a sample of shoppers without, with, and under the current policy."""
    users = list(
        session.scalars(
            select(UserRole.user_id)
            .where(UserRole.role == Role.SHOPPER.value)
            .order_by(func.random())
            .limit(sample_users)
        )
    )
    if not users:
        users = [0]  # no shoppers yet: preview the cold-start feed
    current = engine.policy.rules if engine.policy else None
    feeds: dict[str, list[list[int]]] = {"off": [], "new": [], "current": []}
    for uid in users:
        for label, r, on in (
            ("off", None, False),
            ("new", rules, True),
            ("current", current, True),
        ):
            if label == "current" and current is None:
                continue
            placed = engine.ranked_feed(
                session, user_id=uid or None, n=rules.window, rules=r, use_policy=on, seed=uid
            )
            feeds[label].append([p.item for p in placed])
    snap = engine.snapshot
    return PreviewOut(
        sample_users=len(users),
        window=rules.window,
        without_policy=ExposureSummary.model_validate(exposure_summary(feeds["off"], snap, rules)),
        with_policy=ExposureSummary.model_validate(exposure_summary(feeds["new"], snap, rules)),
        current_policy=ExposureSummary.model_validate(
            exposure_summary(feeds["current"], snap, rules)
        )
        if current is not None
        else None,
    )


# --- model versions ----------------------------------------------------------------------------


def list_model_versions(*, session: Session) -> list[FeedModelVersion]:
    """Trained model versions, newest first."""
    return list(session.scalars(select(FeedModelVersion).order_by(FeedModelVersion.id.desc())))


def activate_model_version(*, session: Session, version: str) -> FeedModelVersion:
    """Serve this version (roll back or forward); processes swap within seconds."""
    row = session.scalar(select(FeedModelVersion).where(FeedModelVersion.version == version))
    if row is None:
        raise NotFound("No such model version.")
    session.execute(
        update(FeedModelVersion)
        .where(FeedModelVersion.id != row.id, FeedModelVersion.is_active.is_(True))
        .values(is_active=False)
    )
    row.is_active = True
    session.flush()
    return row
