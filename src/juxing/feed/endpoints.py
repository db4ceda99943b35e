"""HTTP endpoints of the feed: behaviour events, the feed itself, traffic policies, models."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from juxing.feed import service
from juxing.feed.engine import engine_for
from juxing.feed.schemas import (
    EventBatchIn,
    EventBatchResult,
    FeedPage,
    ModelVersionOut,
    PolicyIn,
    PolicyOut,
    PolicyUpdate,
    PreviewIn,
    PreviewOut,
)
from juxing.feed.viewer import fast_viewer, slow_viewer
from juxing.kit.auth import CurrentUser, OperatorUser
from juxing.kit.db import Database, DbSession

router = APIRouter(tags=["feed"])  # GET /feed first: the hottest route is matched first


@router.get("/feed", response_model=FeedPage)
async def get_feed(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The caller's personalized home feed (千人千面); signed-out callers get the cold-start
    feed. Every item says why it is there (``reason``, ``boosts``); festival-deal items carry
    their live ``deal`` state. Authenticated like every endpoint (bearer token or session
    cookie), optionally."""
    body = await run_in_threadpool(_feed_body, request, limit, cursor)
    return Response(body, media_type="application/json")


def _feed_body(request: Request, limit: int, cursor: str | None) -> bytes:
    """The whole read in one worker-thread hop (the hottest endpoint: no per-dependency hops).

    The caller is resolved by ``fast_viewer`` (a valid bearer token: one statement) or the
    kit's ``optional_user`` (every other case, with the kit's answers and errors); the
    shopper's events and follows are one more statement on the same pooled DB-API
    connection, and no ORM unit of work is opened unless the kit needs one.
    """
    engine = engine_for(request.app.state)
    db: Database = request.app.state.db
    read_at = time.monotonic()  # before the reads: an event after it drops what is kept
    with db.dbapi_connection() as conn:
        reads = engine.reads(conn)
        user_id = fast_viewer(reads, request, engine.touch_token, engine.remember_token)
        if user_id is None:
            with db.session(write=False) as session:
                user_id = slow_viewer(request, session)
        shopper = reads.shopper(user_id)
    # Built from the snapshot's own typed arrays: documented by FeedPage, not re-validated.
    # Only what the fast path can find again is kept: bearer-token and signed-out callers.
    keep = user_id is not None or not request.scope.get("session")
    return engine.feed_json(shopper, limit=limit, cursor=cursor, read_at=read_at if keep else None)


@router.post("/events", response_model=EventBatchResult)
def post_events(
    body: EventBatchIn, user: CurrentUser, session: DbSession, response: Response
) -> EventBatchResult:
    """Record up to 1,000 behaviour events of the caller.

    Each event is validated on its own: the invalid ones come back in ``errors`` (with their
    index and field paths) while the valid ones are stored. Re-sending an event with the same
    ``client_event_id`` stores nothing new (it is counted in ``duplicates``).
    """
    result = service.ingest_events(session=session, user_id=user.id, raw_events=body.events)
    response.status_code = 200 if result.rejected == 0 else 207
    return result


@router.get("/feed/policies", response_model=list[PolicyOut])
def list_policies(session: DbSession, _op: OperatorUser) -> list[PolicyOut]:
    """Every traffic policy (operators)."""
    return [
        PolicyOut.model_validate(p, from_attributes=True)
        for p in service.list_policies(session=session)
    ]


@router.post("/feed/policies", response_model=PolicyOut, status_code=201)
def create_policy(body: PolicyIn, session: DbSession, op: OperatorUser) -> PolicyOut:
    """Save a traffic policy; ``activate: true`` makes it the one the feed applies."""
    policy = service.create_policy(session=session, data=body, operator=op)
    return PolicyOut.model_validate(policy, from_attributes=True)


@router.get("/feed/policies/{policy_id}", response_model=PolicyOut)
def get_policy(policy_id: int, session: DbSession, _op: OperatorUser) -> PolicyOut:
    """One traffic policy."""
    policy = service.get_policy(session=session, policy_id=policy_id)
    return PolicyOut.model_validate(policy, from_attributes=True)


@router.patch("/feed/policies/{policy_id}", response_model=PolicyOut)
def update_policy(
    policy_id: int, body: PolicyUpdate, session: DbSession, op: OperatorUser
) -> PolicyOut:
    """Change a policy's rules; the feed applies the new version within seconds."""
    policy = service.update_policy(session=session, policy_id=policy_id, data=body, operator=op)
    return PolicyOut.model_validate(policy, from_attributes=True)


@router.post("/feed/policies/{policy_id}/activate", response_model=PolicyOut)
def activate_policy(policy_id: int, session: DbSession, op: OperatorUser) -> PolicyOut:
    """Make this the active traffic policy."""
    policy = service.activate_policy(session=session, policy_id=policy_id, operator=op)
    return PolicyOut.model_validate(policy, from_attributes=True)


@router.post("/feed/policies/deactivate", status_code=204)
def deactivate_policies(session: DbSession, _op: OperatorUser) -> None:
    """Turn the traffic policy off (pure relevance)."""
    service.deactivate_policies(session=session)


@router.post("/feed/policies/preview", response_model=PreviewOut)
def preview_policy(
    body: PreviewIn, request: Request, session: DbSession, _op: OperatorUser
) -> PreviewOut:
    """Simulate the policy's effect on exposure over a sample of shoppers' feeds, before
    saving it: shares without any policy, with these rules, and with the active policy."""
    engine = engine_for(request.app.state)
    return service.preview_policy(
        session=session, engine=engine, rules=body.rules, sample_users=body.sample_users
    )


@router.get("/feed/models", response_model=list[ModelVersionOut])
def list_models(session: DbSession, _op: OperatorUser) -> list[ModelVersionOut]:
    """Trained model versions, newest first (operators)."""
    return [
        ModelVersionOut.model_validate(m, from_attributes=True)
        for m in service.list_model_versions(session=session)
    ]


@router.post("/feed/models/{version}/activate", response_model=ModelVersionOut)
def activate_model(version: str, session: DbSession, _op: OperatorUser) -> ModelVersionOut:
    """Serve this model version (roll forward or back) without a restart."""
    row = service.activate_model_version(session=session, version=version)
    return ModelVersionOut.model_validate(row, from_attributes=True)
