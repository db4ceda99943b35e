"""Idempotency-Key: replay, mismatch rejection, concurrent duplicates, failures."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_user_with_auth
from juxing.accounts import service as accounts
from juxing.app import create_app
from juxing.kit.auth import CurrentUser
from juxing.kit.db import DbSession
from juxing.kit.errors import Unprocessable
from juxing.kit.idempotency import Idempotent
from juxing.models.accounts import ApiToken


class MintIn(BaseModel):
    name: str
    slow: float = 0.0
    fail: bool = False


def _router() -> APIRouter:
    """A creating endpoint (it mints an API token) guarded by the mechanism under test."""
    router = APIRouter()

    @router.post("/api/test/mint", status_code=201)
    def mint(body: MintIn, user: CurrentUser, session: DbSession, idem: Idempotent):
        def work() -> dict[str, object]:
            token, _raw = accounts.create_token(session=session, user=user, name=body.name)
            if body.slow:
                time.sleep(body.slow)
            if body.fail:
                raise Unprocessable("told to fail", code="told_to_fail")
            return {"id": token.id, "name": token.name}

        return idem.run(work)

    return router


def _count(session: Session, user_id: int, name: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.name == name)
        )
        or 0
    )


@pytest.fixture
def idem_client(settings, db):
    from fastapi.testclient import TestClient

    app = create_app(settings, db=db)
    app.include_router(_router())
    with TestClient(app) as c:
        yield c


def test_same_key_replays_first_response(idem_client, session):
    user, headers = make_user_with_auth(session)
    session.commit()
    h = {**headers, "Idempotency-Key": "k-1"}
    first = idem_client.post("/api/test/mint", json={"name": "a"}, headers=h)
    second = idem_client.post("/api/test/mint", json={"name": "a"}, headers=h)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert _count(session, user.id, "a") == 1


def test_no_key_means_no_dedupe(idem_client, session):
    user, headers = make_user_with_auth(session)
    session.commit()
    idem_client.post("/api/test/mint", json={"name": "b"}, headers=headers)
    idem_client.post("/api/test/mint", json={"name": "b"}, headers=headers)
    assert _count(session, user.id, "b") == 2


def test_same_key_different_body_is_422(idem_client, session):
    user, headers = make_user_with_auth(session)
    session.commit()
    h = {**headers, "Idempotency-Key": "k-2"}
    assert idem_client.post("/api/test/mint", json={"name": "c"}, headers=h).status_code == 201
    r = idem_client.post("/api/test/mint", json={"name": "other"}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert _count(session, user.id, "other") == 0


def test_keys_are_scoped_per_user(idem_client, session):
    a, ha = make_user_with_auth(session)
    b, hb = make_user_with_auth(session)
    session.commit()
    idem_client.post(
        "/api/test/mint", json={"name": "d"}, headers={**ha, "Idempotency-Key": "same"}
    )
    r = idem_client.post(
        "/api/test/mint", json={"name": "d"}, headers={**hb, "Idempotency-Key": "same"}
    )
    assert r.status_code == 201
    assert "idempotent-replayed" not in r.headers
    assert _count(session, a.id, "d") == 1 and _count(session, b.id, "d") == 1


def test_failed_request_stores_nothing_and_retry_runs(idem_client, session):
    user, headers = make_user_with_auth(session)
    session.commit()
    h = {**headers, "Idempotency-Key": "k-3"}
    r = idem_client.post("/api/test/mint", json={"name": "e", "fail": True}, headers=h)
    assert r.status_code == 422
    assert _count(session, user.id, "e") == 0
    # The same key with a corrected body is a new attempt, not a mismatch.
    r = idem_client.post("/api/test/mint", json={"name": "e"}, headers=h)
    assert r.status_code == 201
    assert _count(session, user.id, "e") == 1


def test_expired_record_no_longer_replays(idem_client, session):
    from sqlalchemy import update

    from juxing.kit.time import utcnow
    from juxing.models.kit import IdempotencyRecord

    user, headers = make_user_with_auth(session)
    session.commit()
    h = {**headers, "Idempotency-Key": "k-4"}
    idem_client.post("/api/test/mint", json={"name": "f"}, headers=h)
    session.execute(update(IdempotencyRecord).values(expires_at=utcnow()))
    session.commit()
    r = idem_client.post("/api/test/mint", json={"name": "f"}, headers=h)
    assert "idempotent-replayed" not in r.headers
    assert _count(session, user.id, "f") == 2


def test_bad_key_header(idem_client, session):
    _user, headers = make_user_with_auth(session)
    session.commit()
    r = idem_client.post(
        "/api/test/mint", json={"name": "g"}, headers={**headers, "Idempotency-Key": "x" * 300}
    )
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "header.Idempotency-Key"


def test_concurrent_duplicates_run_once(settings, committed_db, live_server):
    """Ten simultaneous requests with one key: one mint, every caller gets its result."""
    app = create_app(settings, db=committed_db)
    app.include_router(_router())
    base = live_server(app)
    with committed_db.session() as s:
        user, headers = make_user_with_auth(s)
        user_id = user.id
    h = {**headers, "Idempotency-Key": "concurrent"}

    def call(_: int) -> httpx.Response:
        return httpx.post(
            f"{base}/api/test/mint", json={"name": "h", "slow": 0.3}, headers=h, timeout=60
        )

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(call, range(10)))
    statuses = sorted(r.status_code for r in responses)
    ok = [r for r in responses if r.status_code == 201]
    # Duplicates wait and replay; none may create a second token.
    assert all(s in (201, 409) for s in statuses), statuses
    assert len({r.json()["id"] for r in ok}) == 1
    with committed_db.session() as s:
        assert _count(s, user_id, "h") == 1
