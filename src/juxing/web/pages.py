"""Plumbing shared by every page: templates, who is asking, CSRF for forms, HTML errors.

A page route declares its caller like an API endpoint does (``ShopperPage``, ``CreatorPage``,
``MerchantPage``, ``OperatorPage``, ``AnyPage``); a visitor who is not signed in is sent to
the sign-in page, and a signed-in user without the role gets a 403 page. Form posts carry the
session's CSRF token in the ``csrf_token`` field, checked before anything else runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from juxing.kit.auth import SAFE_METHODS, check_csrf, csrf_token, optional_user
from juxing.kit.errors import Forbidden, JuxingError, validation_details
from juxing.kit.time import utcnow
from juxing.models.accounts import Role, User
from juxing.web.i18n import LOCALE_NAMES, LOCALES, N_, choose_locale, translator

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, copied from the user when the request starts, so that an
    error page can still show the shell after the unit of work was rolled back."""

    id: int
    email: str
    display_name: str
    locale: str
    roles: frozenset[Role]

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.email, user.display_name, user.locale, user.role_set)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class SignInRequired(Exception):
    """A page needs a signed-in user; rendered as a redirect to the sign-in page."""


async def form_csrf(request: Request) -> None:
    """Check the CSRF token of a cookie-session form post before the user is loaded."""
    if request.method in SAFE_METHODS:
        return
    submitted = request.headers.get("X-CSRF-Token")
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
    check_csrf(request, submitted)
    request.state.csrf_checked = True


def page_user(
    request: Request,
    _csrf: Annotated[None, Depends(form_csrf)],
    user: Annotated[User | None, Depends(optional_user)],
) -> User | None:
    """The signed-in user of a page (or None); form posts have passed the CSRF check."""
    request.state.viewer = Viewer.of(user) if user is not None else None
    return user


def signed_in(user: Annotated[User | None, Depends(page_user)]) -> User:
    if user is None:
        raise SignInRequired()
    return user


def page_roles(*roles: Role) -> Any:
    """A page dependency admitting signed-in users holding any of ``roles``."""

    def _dependency(user: Annotated[User, Depends(signed_in)]) -> User:
        if not user.has_role(*roles):
            raise Forbidden(
                "This page needs the role " + ", ".join(r.value for r in roles) + ".",
                code="role_required",
            )
        return user

    _dependency.__name__ = "page_" + "_or_".join(r.value for r in roles)
    return _dependency


MaybeUser = Annotated[User | None, Depends(page_user)]
AnyPage = Annotated[User, Depends(signed_in)]
ShopperPage = Annotated[User, Depends(page_roles(Role.SHOPPER))]
CreatorPage = Annotated[User, Depends(page_roles(Role.CREATOR))]
MerchantPage = Annotated[User, Depends(page_roles(Role.MERCHANT))]
OperatorPage = Annotated[User, Depends(page_roles(Role.OPERATOR))]


def home_path(user: User | Viewer | None) -> str:
    """Where a user lands after signing in: their role's main page."""
    if user is None:
        return "/"
    if user.has_role(Role.OPERATOR):
        return "/ops"
    if user.has_role(Role.MERCHANT):
        return "/merchant"
    if user.has_role(Role.CREATOR):
        return "/studio"
    return "/"


def nav_for(user: Viewer | None) -> list[tuple[str, str]]:
    """The navigation of ``user``'s roles as (path, English label)."""
    items: list[tuple[str, str]] = [
        ("/", N_("For you")),
        ("/festival", N_("Festival")),
        ("/search", N_("Search")),
    ]
    if user is None:
        return items
    items += [("/orders", N_("Orders")), ("/inbox", N_("Inbox"))]
    if user.has_role(Role.CREATOR):
        items.append(("/studio", N_("Studio")))
    if user.has_role(Role.MERCHANT):
        items.append(("/merchant", N_("Merchant")))
    if user.has_role(Role.OPERATOR):
        items.append(("/ops", N_("Operations")))
    return items


def money(amount_minor: int | None, currency: str = "CNY") -> str:
    """Integer minor units as a display string (¥12.90)."""
    if amount_minor is None:
        return ""
    symbol = {"CNY": "¥", "USD": "$", "EUR": "€"}.get(currency.upper(), currency.upper() + " ")
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(int(amount_minor)), 100)
    return f"{sign}{symbol}{units:,}.{cents:02d}"


def percent(part: float | int | None, whole: float | int | None) -> int:
    """0..100, for stock bars and progress."""
    if not whole or part is None:
        return 0
    return max(0, min(100, math.floor(100 * part / whole)))


def isoformat(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


templates.env.filters["money"] = money
templates.env.filters["iso"] = isoformat
templates.env.globals["percent"] = percent


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the shell's context (viewer, locale, ``_``, CSRF, nav)."""
    user: Viewer | None = getattr(request.state, "viewer", None)
    locale = choose_locale(request, user)
    ctx: dict[str, Any] = {
        "user": user,
        "locale": locale,
        "locales": [(code, LOCALE_NAMES[code]) for code in LOCALES],
        "_": translator(locale),
        "csrf": csrf_token(request),
        "nav": nav_for(user),
        "path": request.url.path,
        "now": utcnow(),
        "is_htmx": request.headers.get("HX-Request") == "true",
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, template, ctx, status_code=status_code)


def redirect(path: str) -> Response:
    """A redirect after a form post (303 so the browser follows with GET); htmx-aware."""
    response = RedirectResponse(path, status_code=303)
    response.headers["HX-Redirect"] = path
    return response


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or path in {"/healthz", "/readyz"}:
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept or not accept


def install_page_errors(app: FastAPI) -> None:
    """Render errors on pages as HTML; API paths keep the JSON envelope handlers."""
    api_handlers = dict(app.exception_handlers)

    async def _signin(request: Request, _exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)

    async def _juxing(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, JuxingError)
        if not _wants_html(request):
            return await api_handlers[JuxingError](request, exc)
        if exc.status_code == 401:
            return await _signin(request, exc)
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.message, "code": exc.code},
            status_code=exc.status_code,
        )

    async def _validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not _wants_html(request):
            return await api_handlers[RequestValidationError](request, exc)
        details = validation_details(list(exc.errors()))
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return render(
            request,
            "error.html",
            {"status": 422, "message": message, "code": "validation_error"},
            status_code=422,
        )

    async def _http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _wants_html(request):
            return await api_handlers[StarletteHTTPException](request, exc)
        message = "Page not found." if exc.status_code == 404 else str(exc.detail)
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "message": message, "code": "http_error"},
            status_code=exc.status_code,
        )

    app.add_exception_handler(SignInRequired, _signin)
    app.add_exception_handler(JuxingError, _juxing)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
