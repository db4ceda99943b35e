"""Account business logic: no HTTP objects here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from juxing.kit.errors import Conflict, NotFound, Unauthorized
from juxing.kit.revocations import Revoked, announce
from juxing.kit.security import (
    hash_password,
    hash_token,
    new_api_token,
    password_needs_rehash,
    verify_password,
)
from juxing.kit.time import utcnow
from juxing.models.accounts import ApiToken, Role, User, UserRole

# Verifying against this keeps unknown-email logins as slow as wrong-password ones.
_DUMMY_HASH = hash_password("not-a-real-password")


def create_user(
    *,
    session: Session,
    email: str,
    password: str,
    display_name: str,
    roles: Iterable[Role] = (Role.SHOPPER,),
    locale: str = "en",
    password_hash: str | None = None,
) -> User:
    """Create a user with ``roles``; 409 if the email is taken.

    ``password_hash`` (an argon2 hash of ``password``) skips hashing again, for bulk creation
    of accounts that share one password (the demo world).
    """
    email = email.strip().lower()
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(
            "An account with this email exists.",
            code="email_taken",
            details={"field": "body.email"},
        )
    now = utcnow()
    user = User(
        email=email,
        password_hash=password_hash or hash_password(password),
        display_name=display_name,
        locale=locale,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    user.roles = [UserRole(role=r.value, granted_at=now) for r in sorted(set(roles))]
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "An account with this email exists.",
            code="email_taken",
            details={"field": "body.email"},
        ) from exc
    return user


def get_user(*, session: Session, user_id: int) -> User:
    """A user with roles loaded; 404 if absent."""
    user = session.scalar(select(User).where(User.id == user_id).options(selectinload(User.roles)))
    if user is None:
        raise NotFound("No such user.")
    return user


def get_by_email(*, session: Session, email: str) -> User | None:
    return session.scalar(
        select(User).where(User.email == email.strip().lower()).options(selectinload(User.roles))
    )


def authenticate(*, session: Session, email: str, password: str) -> User:
    """The user with these credentials; 401 otherwise (same answer for every failure)."""
    user = get_by_email(session=session, email=email)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if not verify_password(user.password_hash, password) or not user.is_active:
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def set_roles(*, session: Session, user: User, roles: Iterable[Role]) -> User:
    wanted = {r.value for r in roles}
    now = utcnow()
    user.roles = [r for r in user.roles if r.role in wanted] + [
        UserRole(role=r, granted_at=now) for r in sorted(wanted - {r.role for r in user.roles})
    ]
    session.flush()
    return user


def grant_role(*, session: Session, user: User, role: Role) -> User:
    return set_roles(session=session, user=user, roles={*user.role_set, role})


def list_users(
    *, session: Session, limit: int, offset: int, role: Role | None = None
) -> tuple[list[User], int]:
    query = select(User)
    if role is not None:
        query = query.where(
            User.id.in_(select(UserRole.user_id).where(UserRole.role == role.value))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    users = session.scalars(
        query.options(selectinload(User.roles)).order_by(User.id).limit(limit).offset(offset)
    ).all()
    return list(users), total


def create_token(
    *, session: Session, user: User, name: str, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """A new API token; the raw value is returned once and only its hash is stored."""
    raw = new_api_token()
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(raw),
        hint=raw[:10],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    return token, raw


def list_tokens(*, session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(
    *, session: Session, user: User, token_id: int, redis_client: Any = None
) -> ApiToken:
    """Revoke one of ``user``'s tokens; another user's token is 404. Once committed, every
    process stops trusting it at once (``kit/revocations.py``; others through Redis)."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        announce(session, Revoked(token_hashes=(token.token_hash,)), redis_client=redis_client)
    return token


def set_active(*, session: Session, user: User, active: bool, redis_client: Any = None) -> User:
    """Enable or disable an account. Once a disabling commits, every process stops trusting
    the account's tokens at once (``kit/revocations.py``; others through Redis)."""
    if user.is_active and not active:
        announce(session, Revoked(user_ids=(user.id,)), redis_client=redis_client)
    user.is_active = active
    return user
