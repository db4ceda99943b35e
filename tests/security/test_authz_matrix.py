"""The authorization matrix, generated from the route table (see authz_matrix.py).

Every route × every role × own/other's object → the declared status. A route without an
entry in ``MATRIX`` fails ``test_every_route_has_an_entry`` with the line to add.
"""

from __future__ import annotations

import pytest
from authz_matrix import MATRIX, OWNERS, ROLES, SIGNED_IN_ROLES, Access, fill_path
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.testclient import TestClient

from factories import PASSWORD, bearer, make_user
from juxing.app import create_app
from juxing.config import Settings
from juxing.content import service as content
from juxing.models.accounts import Role

BODY_METHODS = {"POST", "PUT", "PATCH"}


def route_table(app: FastAPI) -> dict[str, RouteContext]:
    """``"METHOD /path"`` -> route, for every endpoint of the app (included routers too)."""
    table: dict[str, RouteContext] = {}
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute) and ctx.path and ctx.methods:
            for method in sorted(set(ctx.methods) - {"HEAD", "OPTIONS"}):
                table[f"{method} {ctx.path}"] = ctx
    return table


@pytest.fixture
def matrix_app(settings: Settings, db) -> FastAPI:  # type: ignore[no-untyped-def]
    # Rate limits are tested apart (test_ratelimit.py); here they would only add 429s.
    return create_app(settings.model_copy(update={"rate_limits_enabled": False}), db=db)


def test_every_route_has_an_entry(matrix_app: FastAPI) -> None:
    table = route_table(matrix_app)
    missing = sorted(set(table) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(table))
    lines = "\n".join(f'    "{key}": <PUBLIC | SIGNED_IN | roles(...)>,' for key in missing)
    assert not missing, f"routes without an entry in tests/security/authz_matrix.py:\n{lines}"
    assert not stale, f"entries in authz_matrix.py for routes that do not exist: {stale}"


def describe(response) -> str:  # type: ignore[no-untyped-def]
    """The redirect target or the error code of a response, for failure messages."""
    if response.headers.get("location"):
        return "-> " + response.headers["location"]
    try:
        return str(response.json()["error"]["code"])
    except Exception:
        return ""


def _allowed_ok(status: int, access: Access, response_location: str) -> bool:
    if status == 403 and response_location in access.admitted_errors:
        return True
    if status in (401, 403) or status >= 500:
        return False
    return not (status in (302, 303, 307) and "/signin" in response_location)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # ~250 routes x 5 roles + owners; slow on a shared machine
def test_role_and_ownership_matrix(matrix_app: FastAPI, session) -> None:  # type: ignore[no-untyped-def]
    table = route_table(matrix_app)
    users = {name: make_user(session, Role(name)) for name in SIGNED_IN_ROLES}
    # The creator is an approved one (with a profile), as creator pages and actions expect.
    application = content.apply_as_creator(
        session=session,
        user=users["creator"],
        handle=f"matrix{users['creator'].id}",
        bio="",
        pitch="",
    )
    content.approve_application(
        session=session, operator=users["operator"], application_id=application.id
    )
    session.flush()
    headers = {name: bearer(session, user) for name, user in users.items()}
    headers["anonymous"] = {}
    failures: list[str] = []
    checked = 0

    with TestClient(matrix_app, follow_redirects=False) as client:

        def call(
            method: str, path: str, role_headers: dict[str, str], body: dict | None = None
        ) -> tuple[int, str]:
            r = client.request(
                method,
                path,
                json=(body if body is not None else {}) if method in BODY_METHODS else None,
                headers=role_headers,
            )
            return r.status_code, describe(r)

        def form_call(method: str, path: str, role: str) -> tuple[int, str]:
            """As a browser would: a fresh cookie session and its CSRF token."""
            with TestClient(matrix_app, follow_redirects=False) as browser:
                login = browser.post(
                    "/api/v1/auth/login", json={"email": users[role].email, "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
                csrf = login.json()["csrf_token"]
                r = browser.request(method, path, data={}, headers={"X-CSRF-Token": csrf})
                return r.status_code, describe(r)

        for key in sorted(set(table) & set(MATRIX)):
            access = MATRIX[key]
            method, path = key.split(" ", 1)
            if access.form:
                url = fill_path(path, {})
                for role in ROLES:
                    if role == "anonymous":
                        status, what = call(method, url, {})  # no session, no CSRF token
                        expected_ok = status == 403
                    else:
                        status, what = form_call(method, url, role)
                        expected_ok = (
                            _allowed_ok(status, access, what)
                            if role in access.allowed
                            else status == access.wrong_role_status
                        )
                    checked += 1
                    if not expected_ok:
                        failures.append(f"{key} as {role} (cookie session): {status} {what}")
                continue
            owner_params: dict[str, int] = {}
            if access.owner is not None:
                owner_role, factory = OWNERS[access.owner]
                owner = make_user(session, Role(owner_role))
                other_headers = bearer(session, make_user(session, Role(owner_role)))
                owner_params = factory(session, owner)
                url = fill_path(path, owner_params)
                # Another user of the same role: 404, the object "does not exist" for them.
                status, _ = call(method, url, other_headers, access.body)
                checked += 1
                if status != 404:
                    failures.append(f"{key} as another {owner_role}: {status}, expected 404")
                if "operator" in access.allowed:
                    # On an object of its own (the call may change or delete it).
                    spare = factory(session, make_user(session, Role(owner_role)))
                    status, loc = call(
                        method, fill_path(path, spare), headers["operator"], access.body
                    )
                    checked += 1
                    if access.operator_sees_others and not _allowed_ok(status, access, loc):
                        failures.append(f"{key} as operator on another's object: {status}")
                    if not access.operator_sees_others and status != 404:
                        failures.append(f"{key} as operator on another's: {status}, expected 404")
                status, loc = call(method, url, bearer(session, owner), access.body)
                checked += 1
                if status == 404 or not _allowed_ok(status, access, loc):
                    failures.append(f"{key} as its owner ({owner_role}): {status}")

            for role in ROLES:
                if access.owner is not None and role in access.allowed:
                    continue  # covered above with real objects
                status, loc = call(method, fill_path(path, {}), headers[role])
                checked += 1
                if role in access.allowed:
                    if not _allowed_ok(status, access, loc):
                        failures.append(f"{key} as {role}: {status} {loc}, expected access")
                else:
                    expected = (
                        access.anonymous_status if role == "anonymous" else access.wrong_role_status
                    )
                    if status != expected:
                        failures.append(f"{key} as {role}: {status}, expected {expected}")

    assert checked > len(MATRIX)
    assert not failures, "authorization matrix violations:\n" + "\n".join(failures)
