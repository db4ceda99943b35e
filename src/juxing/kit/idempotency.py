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
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from juxing.kit.auth import CurrentUser
from juxing.kit.db import DbSession
from juxing.kit.errors import BadRequest, Conflict, Unprocessable
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
    return f"user:{user.id}"


Idempotent = Annotated[Idempotency, Depends(idempotency)]
"""Inject into a POST endpoint and return ``idem.run(lambda: service.create(...))``."""
