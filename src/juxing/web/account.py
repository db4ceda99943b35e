"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from juxing.accounts import service as accounts
from juxing.kit.auth import SESSION_CSRF_KEY, SESSION_USER_KEY
from juxing.kit.db import DbSession
from juxing.kit.errors import Unauthorized
from juxing.web.i18n import LOCALE_COOKIE, LOCALES
from juxing.web.pages import MaybeUser, home_path, redirect, render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths may be redirect targets."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, user: MaybeUser, next: str | None = None) -> Response:
    if user is not None:
        return redirect(safe_next(next, home_path(user)))
    return render(request, "signin.html", {"next": safe_next(next, ""), "email": ""})


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    session: DbSession,
    _user: MaybeUser,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the credentials with the accounts service and start a cookie session."""
    try:
        user = accounts.authenticate(session=session, email=email, password=password)
    except Unauthorized:
        return render(
            request,
            "signin.html",
            {"next": safe_next(next, ""), "email": email, "failed": True},
            status_code=400,
        )
    request.session.clear()
    request.session[SESSION_USER_KEY] = user.id
    request.session.pop(SESSION_CSRF_KEY, None)
    return redirect(safe_next(next, home_path(user)))


@router.post("/signout")
def signout(request: Request, _user: MaybeUser) -> Response:
    request.session.clear()
    return redirect("/")


@router.post("/lang")
def switch_language(
    request: Request,
    user: MaybeUser,
    locale: Annotated[str, Form()],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Remember the language in a cookie and, when signed in, on the account."""
    if locale not in LOCALES:
        locale = LOCALES[0]
    if user is not None:
        user.locale = locale
    response = redirect(safe_next(next))
    response.set_cookie(
        LOCALE_COOKIE,
        locale,
        max_age=365 * 24 * 3600,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
    )
    return response
