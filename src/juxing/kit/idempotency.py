"""``Idempotency-Key`` for POSTs that create orders, payments and payouts.

The key is claimed inside the request's own transaction, so the business change and
the stored response commit together or not at all:

- first request: its response is stored and replayed for ``idempotency_ttl_s`` (24 h);
- the same key with a different body: 422 ``idempotency_key_reused``;
- a concurrent duplicate waits on the database's lock for the first to finish and then
  replays its response, or gets 409 ``idempotency_in_progress`` after a bounded wait;
- a request that fails stores nothing, so a retry runs again (nothing was committed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import Table, bindparam, delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from juxing.kit.auth import CurrentUser
from juxing.kit.db import DbSession
from juxing.kit.errors import BadRequest, Conflict, JuxingError, Unprocessable
from juxing.kit.time import utcnow
from juxing.models.accounts import User
from juxing.models.kit import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
LOCK_WAIT = "10s"


class Idempotency:
    """Runs an endpoint's work at most once per (sender, key)."""

    def __init__(
        self,
        *,
        session: Session,
        principal: str,
        key: str | None,
        method: str,
        path: str,
        request_hash: str,
        ttl_s: int,
    ) -> None:
        self.session = session
        self.principal = principal
        self.key = key
        self.method = method
        self.path = path
        self.request_hash = request_hash
        self.ttl_s = ttl_s

    def run(self, work: Callable[[], Any], *, status_code: int = 201) -> JSONResponse:
        """Run ``work`` (which returns a response model) or replay the stored response."""
        if self.key is None:
            return JSONResponse(jsonable_encoder(work()), status_code=status_code)
        replay = self._claim()
        if replay is not None:
            return replay
        body = jsonable_encoder(work())
        record = self._record()
        if record is None:  # pragma: no cover - the claim row is in this transaction
            raise Conflict("Idempotency record vanished.", code="idempotency_in_progress")
        record.state = "done"
        record.response_status = status_code
        record.response_body = json.dumps(body, separators=(",", ":"))
        self.session.flush()
        return JSONResponse(body, status_code=status_code)

    def _record(self) -> IdempotencyRecord | None:
        return self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.principal == self.principal, IdempotencyRecord.key == self.key
            )
        )

    def _claim(self) -> JSONResponse | None:
        now = utcnow()
        s = self.session
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        # An expired record no longer protects its key.
        s.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.principal == self.principal,
                IdempotencyRecord.key == self.key,
                IdempotencyRecord.expires_at <= now,
            )
        )
        try:
            with s.begin_nested():
                s.add(
                    IdempotencyRecord(
                        principal=self.principal,
                        key=self.key,
                        method=self.method,
                        path=self.path,
                        request_hash=self.request_hash,
                        state="in_progress",
                        created_at=now,
                        locked_until=now,
                        expires_at=now + timedelta(seconds=self.ttl_s),
                    )
                )
                s.flush()
            return None
        except OperationalError as exc:  # lock wait ran out: the first is still running
            raise Conflict(
                "A request with this Idempotency-Key is still in progress.",
                code="idempotency_in_progress",
            ) from exc
        except IntegrityError:
            pass
        existing = self._record()
        if existing is None or existing.state != "done":
            raise Conflict(
                "A request with this Idempotency-Key is still in progress.",
                code="idempotency_in_progress",
            )
        if (
            existing.request_hash != self.request_hash
            or existing.path != self.path
            or existing.method != self.method
        ):
            raise Unprocessable(
                "This Idempotency-Key was used with a different request.",
                code="idempotency_key_reused",
                details={"field": f"header.{HEADER}"},
            )
        return JSONResponse(
            json.loads(existing.response_body or "null"),
            status_code=existing.response_status or 200,
            headers={REPLAY_HEADER: "true"},
        )


async def idempotency(request: Request, session: DbSession, user: CurrentUser) -> Idempotency:
    key = request.headers.get(HEADER)
    if key is not None:
        key = key.strip()
        if not key or len(key) > 255:
            raise BadRequest(
                f"{HEADER} must be 1 to 255 characters.",
                code="invalid_header",
                details={"field": f"header.{HEADER}"},
            )
    body = await request.body()
    return Idempotency(
        session=session,
        principal=_principal(user),
        key=key,
        method=request.method,
        path=request.url.path,
        request_hash=hashlib.sha256(body).hexdigest(),
        ttl_s=request.app.state.settings.idempotency_ttl_s,
    )


def _principal(user: User) -> str:
    return principal_of(user.id)


Idempotent = Annotated[Idempotency, Depends(idempotency)]
"""Inject into a POST endpoint and return ``idem.run(lambda: service.create(...))``."""


# --- many keys in one transaction (the buy fast path's groups) ------------------------------


@dataclass
class Claim:
    """One request's ``Idempotency-Key`` in a group; ``claim_many`` fills in the outcome:
    ``claimed`` (run the work, then ``settle_many``), or ``replay`` (status, body) of the
    first response, or ``error`` (409 in progress, 422 reused for another request)."""

    principal: str
    key: str
    method: str
    path: str
    request_hash: str
    claimed: bool = False
    replay: tuple[int, str] | None = None
    error: JuxingError | None = None


_RECORDS = cast(Table, IdempotencyRecord.__table__)
_PAIR = tuple_(_RECORDS.c.principal, _RECORDS.c.key)


def claim_many(session: Session, claims: list[Claim], *, now: datetime, ttl_s: int) -> None:
    """``Idempotency.run``'s claim for many keys at once, with its rules: an expired record
    no longer protects its key; the first request of a key claims it (a second one in the
    same group finds it in progress); a concurrent holder is waited for at most
    ``LOCK_WAIT``; a finished one is replayed if it was the same request."""
    if not claims:
        return
    pairs = sorted({(c.principal, c.key) for c in claims})
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
    session.execute(
        delete(_RECORDS).where(_PAIR.in_(pairs), _RECORDS.c.expires_at <= now),
        execution_options={"synchronize_session": False},
    )
    rows = [
        {
            "principal": c.principal,
            "key": c.key,
            "method": c.method,
            "path": c.path,
            "request_hash": c.request_hash,
            "state": "in_progress",
            "created_at": now,
            "locked_until": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        # in key order (stable: a key's first use stays first), so that two groups claiming
        # the same keys lock them in the same order
        for c in sorted(claims, key=lambda c: (c.principal, c.key))
    ]
    insert = pg_insert if pg else sqlite_insert
    stmt = (
        insert(_RECORDS)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(_RECORDS.c.principal, _RECORDS.c.key)
    )
    try:
        won = {(p, k) for p, k in session.execute(stmt)}
    except OperationalError as exc:  # lock wait ran out: another request holds a key
        raise Conflict(
            "A request with this Idempotency-Key is still in progress.",
            code="idempotency_in_progress",
        ) from exc
    for claim in claims:
        if (claim.principal, claim.key) in won:
            claim.claimed = True
            won.discard((claim.principal, claim.key))  # a second one in the group: in progress
    others = [c for c in claims if not c.claimed]
    if not others:
        return
    mine = {(c.principal, c.key) for c in claims if c.claimed}
    existing = {
        (r.principal, r.key): r
        for r in session.execute(
            select(_RECORDS).where(_PAIR.in_(sorted({(c.principal, c.key) for c in others})))
        )
    }
    for claim in others:
        pair = (claim.principal, claim.key)
        record = existing.get(pair)
        if record is None or record.state != "done" or pair in mine:
            claim.error = Conflict(
                "A request with this Idempotency-Key is still in progress.",
                code="idempotency_in_progress",
            )
        elif (record.request_hash, record.path, record.method) != (
            claim.request_hash,
            claim.path,
            claim.method,
        ):
            claim.error = Unprocessable(
                "This Idempotency-Key was used with a different request.",
                code="idempotency_key_reused",
                details={"field": f"header.{HEADER}"},
            )
        else:
            claim.replay = (record.response_status or 200, record.response_body or "null")


def settle_many(session: Session, done: list[tuple[Claim, int, str]], dropped: list[Claim]) -> None:
    """Store the responses of claimed keys whose work succeeded (``(claim, status, body)``),
    and drop the claims of those refused, so that a retry runs again (as a rolled-back
    request stores nothing)."""
    if done:
        session.execute(
            update(_RECORDS)
            .where(
                _RECORDS.c.principal == bindparam("b_principal"),
                _RECORDS.c.key == bindparam("b_key"),
            )
            .values(
                state="done",
                response_status=bindparam("b_status"),
                response_body=bindparam("b_body"),
            ),
            [
                {"b_principal": c.principal, "b_key": c.key, "b_status": status, "b_body": body}
                for c, status, body in done
            ],
            execution_options={"synchronize_session": False},
        )
    if dropped:
        session.execute(
            delete(_RECORDS).where(_PAIR.in_(sorted({(c.principal, c.key) for c in dropped}))),
            execution_options={"synchronize_session": False},
        )


def principal_of(user_id: int) -> str:
    return f"user:{user_id}"
