"""Who is asking, and may they? Role AND ownership checks as one-line dependencies.

Usage in an endpoint::

    @router.get("/deals/{deal_id}")
    def get_deal(deal_id: int, user: MerchantUser, session: DbSession): ...

and in a service, ``ensure_owner(deal.merchant.owner_id, user)``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload, selectinload

from juxing.kit.db import Database, DbSession
from juxing.kit.errors import Forbidden, NotFound, Unauthorized
from juxing.kit.security import constant_time_equals, hash_token
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, Role, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
SESSION_USER_KEY = "uid"
SESSION_CSRF_KEY = "csrf"
# A token's ``last_used_at`` is recorded at most this often.
TOKEN_TOUCH_AFTER = timedelta(minutes=5)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[SESSION_CSRF_KEY] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get(SESSION_CSRF_KEY)
    if not expected or not submitted or not constant_time_equals(str(expected), submitted):
        raise Forbidden("Missing or wrong CSRF token.", code="csrf_failed")


def invalid_token() -> Unauthorized:
    return Unauthorized(
        "The API token is not valid.", code="invalid_token", headers={"WWW-Authenticate": "Bearer"}
    )


def account_disabled() -> Unauthorized:
    return Unauthorized("The account is disabled.", code="account_disabled")


def role_required(*roles: Role) -> Forbidden:
    names = ", ".join(r.value for r in roles)
    return Forbidden(
        f"This needs the role {names}.",
        code="role_required",
        details={"roles": [r.value for r in roles]},
    )


def _load_user(session: DbSession, user_id: int) -> User | None:
    return session.scalar(select(User).where(User.id == user_id).options(selectinload(User.roles)))


def token_is_live(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    """An API token is usable: not revoked and not expired."""
    return revoked_at is None and (expires_at is None or expires_at > now)


def _touch_token(request: Request, session: DbSession, token_id: int, now: datetime) -> None:
    """Record use, at most every few minutes per token.

    A write request records it in its own unit of work (which holds the write lock on
    SQLite already); a read request in a separate short one.
    """
    stmt = update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
    if request.method not in SAFE_METHODS:
        session.execute(stmt)
        return
    db: Database = request.app.state.db
    with db.session() as s:
        s.execute(stmt)


def _user_from_bearer(request: Request, session: DbSession, raw: str) -> User:
    """One query: the token's user with roles, and the token's validity columns."""
    row = (
        session.execute(
            select(
                User, ApiToken.id, ApiToken.revoked_at, ApiToken.expires_at, ApiToken.last_used_at
            )
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == hash_token(raw))
            .options(joinedload(User.roles))
        )
        .unique()
        .first()
    )
    now = utcnow()
    if row is None or not token_is_live(row.revoked_at, row.expires_at, now):
        raise invalid_token()
    user: User = row[0]
    if not user.is_active:
        raise account_disabled()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_AFTER:
        _touch_token(request, session, row.id, now)
    return user


def optional_user(request: Request, session: DbSession) -> User | None:
    """The authenticated user, by bearer token or session cookie, or None."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized(
                "Use 'Authorization: Bearer <token>'.",
                code="invalid_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        user = _user_from_bearer(request, session, raw.strip())
        request.state.user = user
        return user
    if "session" not in request.scope:
        return None
    uid = request.session.get(SESSION_USER_KEY)
    if uid is None:
        return None
    signed_in = _load_user(session, int(uid))
    if signed_in is None or not signed_in.is_active:
        request.session.clear()
        return None
    # Cookie-authenticated writes must prove they come from our pages.
    if request.method not in SAFE_METHODS and not getattr(request.state, "csrf_checked", False):
        check_csrf(request, request.headers.get(CSRF_HEADER))
    request.state.user = signed_in
    return signed_in


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthorized("Sign in or send an API token.", headers={"WWW-Authenticate": "Bearer"})
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role):
    """A dependency that admits users holding any of ``roles``."""

    async def _dependency(user: CurrentUser) -> User:  # no I/O: no worker thread
        if not user.has_role(*roles):
            raise role_required(*roles)
        return user

    _dependency.__name__ = "require_" + "_or_".join(r.value for r in roles)
    return _dependency


ShopperUser = Annotated[User, Depends(require_roles(Role.SHOPPER))]
CreatorUser = Annotated[User, Depends(require_roles(Role.CREATOR))]
MerchantUser = Annotated[User, Depends(require_roles(Role.MERCHANT))]
OperatorUser = Annotated[User, Depends(require_roles(Role.OPERATOR))]
MerchantOrOperator = Annotated[User, Depends(require_roles(Role.MERCHANT, Role.OPERATOR))]
CreatorOrOperator = Annotated[User, Depends(require_roles(Role.CREATOR, Role.OPERATOR))]


def ensure_owner(
    owner_id: int | None, user: User, *, operator_may: bool = True, what: str = "resource"
) -> None:
    """Raise 404 unless ``user`` owns the object (or is an operator, when allowed).

    Another user's object answers 404, not 403, so ids cannot be probed.
    """
    if owner_id is not None and owner_id == user.id:
        return
    if operator_may and user.has_role(Role.OPERATOR):
        return
    raise NotFound(f"No such {what}.")
