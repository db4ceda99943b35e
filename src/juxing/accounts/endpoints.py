"""HTTP endpoints for accounts, sign-in and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from juxing.accounts import service
from juxing.accounts.schemas import (
    LoginIn,
    MeUpdate,
    RegisterIn,
    SessionOut,
    TokenCreate,
    TokenCreated,
    TokenLoginIn,
    TokenOut,
    UserAdminUpdate,
    UserCreate,
    UserOut,
)
from juxing.kit.auth import (
    SESSION_CSRF_KEY,
    SESSION_USER_KEY,
    CurrentUser,
    OperatorUser,
    csrf_token,
)
from juxing.kit.db import DbSession
from juxing.kit.ratelimit import rate_limit
from juxing.kit.schemas import Limit, Offset, Page
from juxing.models.accounts import Role, User

router = APIRouter(tags=["accounts"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        locale=user.locale,
        is_active=user.is_active,
        roles=sorted(user.role_set),
        created_at=user.created_at,
    )


@router.post(
    "/accounts/register",
    status_code=201,
    response_model=UserOut,
    dependencies=[Depends(rate_limit("register"))],
)
def register(body: RegisterIn, session: DbSession) -> UserOut:
    """Sign up as a shopper (public)."""
    user = service.create_user(
        session=session,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        locale=body.locale,
    )
    return user_out(user)


@router.post("/auth/login", response_model=SessionOut, dependencies=[Depends(rate_limit("login"))])
def login(body: LoginIn, request: Request, session: DbSession) -> SessionOut:
    """Sign in with a session cookie (the web UI); returns the CSRF token for writes."""
    user = service.authenticate(session=session, email=body.email, password=body.password)
    request.session.clear()
    request.session[SESSION_USER_KEY] = user.id
    request.session.pop(SESSION_CSRF_KEY, None)
    return SessionOut(user=user_out(user), csrf_token=csrf_token(request))


@router.post("/auth/logout", status_code=204)
def logout(request: Request, _user: CurrentUser) -> Response:
    request.session.clear()
    return Response(status_code=204)


@router.post(
    "/auth/token",
    status_code=201,
    response_model=TokenCreated,
    dependencies=[Depends(rate_limit("login"))],
)
def login_for_token(body: TokenLoginIn, session: DbSession) -> TokenCreated:
    """Exchange credentials for a bearer API token (for API clients)."""
    user = service.authenticate(session=session, email=body.email, password=body.password)
    token, raw = service.create_token(
        session=session, user=user, name=body.name, expires_in_days=body.expires_in_days
    )
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=raw)


@router.get("/accounts/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.patch("/accounts/me", response_model=UserOut)
def update_me(body: MeUpdate, user: CurrentUser, session: DbSession) -> UserOut:
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.locale is not None:
        user.locale = body.locale
    session.flush()
    return user_out(user)


@router.get("/auth/tokens", response_model=list[TokenOut])
def list_tokens(user: CurrentUser, session: DbSession) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in service.list_tokens(session=session, user=user)]


@router.post("/auth/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, user: CurrentUser, session: DbSession) -> TokenCreated:
    token, raw = service.create_token(
        session=session, user=user, name=body.name, expires_in_days=body.expires_in_days
    )
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=raw)


@router.delete("/auth/tokens/{token_id}", response_model=TokenOut)
def revoke_token(
    token_id: int, request: Request, user: CurrentUser, session: DbSession
) -> TokenOut:
    """Revoke one of the caller's tokens: refused everywhere from the commit on."""
    token = service.revoke_token(
        session=session, user=user, token_id=token_id, redis_client=request.app.state.redis
    )
    return TokenOut.model_validate(token)


@router.get("/accounts/users", response_model=Page[UserOut])
def list_users(
    _op: OperatorUser,
    session: DbSession,
    role: Role | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[UserOut]:
    users, total = service.list_users(session=session, limit=limit, offset=offset, role=role)
    return Page(items=[user_out(u) for u in users], total=total, limit=limit, offset=offset)


@router.post("/accounts/users", status_code=201, response_model=UserOut)
def create_user(body: UserCreate, _op: OperatorUser, session: DbSession) -> UserOut:
    user = service.create_user(
        session=session,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        roles=body.roles,
        locale=body.locale,
    )
    return user_out(user)


@router.patch("/accounts/users/{user_id}", response_model=UserOut)
def update_user(
    user_id: int, body: UserAdminUpdate, request: Request, _op: OperatorUser, session: DbSession
) -> UserOut:
    user = service.get_user(session=session, user_id=user_id)
    if body.roles is not None:
        service.set_roles(session=session, user=user, roles=body.roles)
    if body.is_active is not None:
        service.set_active(
            session=session,
            user=user,
            active=body.is_active,
            redis_client=request.app.state.redis,
        )
    return user_out(user)
