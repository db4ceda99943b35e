"""Small factory functions for test data."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from juxing.accounts import service as accounts
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def make_user(
    session: Session, *roles: Role, email: str | None = None, name: str | None = None
) -> User:
    n = next(_seq)
    user = accounts.create_user(
        session=session,
        email=email or f"user{n}@example.test",
        password=PASSWORD,
        display_name=name or f"User {n}",
        roles=roles or (Role.SHOPPER,),
    )
    session.flush()
    return user


def bearer(session: Session, user: User) -> dict[str, str]:
    """Authorization headers for ``user`` (a fresh API token)."""
    _token, raw = accounts.create_token(session=session, user=user, name="test")
    session.flush()
    return {"Authorization": f"Bearer {raw}"}


def make_user_with_auth(session: Session, *roles: Role) -> tuple[User, dict[str, str]]:
    user = make_user(session, *roles)
    return user, bearer(session, user)


def record_views(
    session: Session, user_id: int, product_ids: list[int], tag: str, first_at: datetime
) -> None:
    """The user viewed ``product_ids`` in order, a minute apart from ``first_at`` (behaviour
    events inserted as the events API does, client ids ``{tag}-{k}``)."""
    from juxing.feed.events import insert_new

    now = utcnow()
    rows = [
        {
            "source": "app",
            "user_id": user_id,
            "action": "view",
            "target_type": "product",
            "target_id": pid,
            "category_id": None,
            "dwell_ms": None,
            "client_event_id": f"{tag}-{k}",
            "occurred_at": first_at + timedelta(minutes=k),
            "received_at": now,
        }
        for k, pid in enumerate(product_ids)
    ]
    insert_new(session, rows)
    session.flush()


def fresh_window(window_s: int, margin_s: float = 5.0) -> None:
    """Wait until a fixed window has at least ``margin_s`` left, so a test never straddles."""
    left = window_s - time.time() % window_s
    if left < margin_s:
        time.sleep(left + 0.05)
