"""Clients cannot set price, commission, status or owner; secure headers and cookies."""

from __future__ import annotations

from typing import Any

import pytest
from authz_matrix import MATRIX, SIGNED_IN_ROLES, fill_path
from fastapi import FastAPI
from fastapi.testclient import TestClient

from factories import PASSWORD, bearer, make_user
from juxing.app import create_app
from juxing.config import Settings
from juxing.models.accounts import Role

# Fields a client must never be able to set where the schema does not offer them.
PROTECTED = {
    "id": 1,
    "price": 1,
    "price_minor": 1,
    "deal_price_minor": 1,
    "amount_minor": 1,
    "commission_minor": 1,
    "commission_rate_bp": 10_000,
    "status": "paid",
    "state": "approved",
    "owner_id": 1,
    "user_id": 1,
    "merchant_id": 1,
    "creator_id": 1,
    "author_id": 1,
    "is_active": True,
    "roles": ["operator"],
    "paid_at": "2020-01-01T00:00:00Z",
    "created_at": "2020-01-01T00:00:00Z",
}


@pytest.fixture
def app(settings: Settings, db) -> FastAPI:  # type: ignore[no-untyped-def]
    return create_app(settings.model_copy(update={"rate_limits_enabled": False}), db=db)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _json_bodies(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``"METHOD /path"`` -> the (resolved) JSON object schema of its request body."""
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                schema = _resolve(spec, content["application/json"]["schema"])
                found[f"{method.upper()} {path}"] = schema
    return found


def test_every_json_body_forbids_unknown_fields(app: FastAPI) -> None:
    bodies = _json_bodies(app.openapi())
    assert bodies, "no JSON request bodies found"
    open_bodies = [
        key
        for key, schema in bodies.items()
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False
    ]
    assert not open_bodies, f"request bodies accepting unknown fields: {open_bodies}"


def test_protected_fields_are_refused_422_on_every_write(app: FastAPI, session) -> None:  # type: ignore[no-untyped-def]
    users = {r: make_user(session, Role(r)) for r in SIGNED_IN_ROLES}
    auth = {r: bearer(session, u) for r, u in users.items()}
    bodies = _json_bodies(app.openapi())
    failures = []
    with TestClient(app) as client:
        for key, schema in sorted(bodies.items()):
            if schema.get("type") != "object":
                continue
            method, path = key.split(" ", 1)
            access = MATRIX.get(key)
            admitted = [r for r in SIGNED_IN_ROLES if access and r in access.allowed]
            headers = auth[admitted[-1]] if admitted else {}
            offered = set(schema.get("properties", {}))
            extra = {k: v for k, v in PROTECTED.items() if k not in offered}
            r = client.request(method, fill_path(path, {}), json=extra, headers=headers)
            if r.status_code != 422:
                failures.append(f"{key}: {r.status_code} {r.text[:200]}")
                continue
            refused = {
                d["field"].removeprefix("body.")
                for d in r.json()["error"]["details"]
                if d["type"] == "extra_forbidden"
            }
            if refused != set(extra):
                failures.append(f"{key}: accepted {sorted(set(extra) - refused)}")
    assert not failures, "mass assignment:\n" + "\n".join(failures)


def test_security_headers_on_pages_api_and_errors(app: FastAPI) -> None:
    with TestClient(app) as client:
        for path in ("/healthz", "/api/v1/accounts/me", "/api/v1/no-such-thing", "/signin"):
            r = client.get(path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["x-frame-options"] == "DENY", path
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
            assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], path
            assert "strict-transport-security" not in r.headers, path  # plain http here
        assert client.get("/healthz").headers["content-type"].startswith("application/json")


def test_behind_tls_hsts_and_secure_cookies(settings: Settings, db, session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session, Role.SHOPPER)
    app = create_app(
        settings.model_copy(update={"secure_cookies": True, "rate_limits_enabled": False}), db=db
    )
    with TestClient(app, base_url="https://testserver") as client:
        r = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        cookie = r.headers["set-cookie"].lower()
        for flag in ("httponly", "secure", "samesite=lax"):
            assert flag in cookie, cookie


def test_session_cookie_without_tls_is_still_httponly_and_lax(app: FastAPI, session) -> None:  # type: ignore[no-untyped-def]
    user = make_user(session, Role.SHOPPER)
    with TestClient(app) as client:
        r = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        # A cookie-authenticated write without the CSRF token is refused.
        r = client.patch("/api/v1/accounts/me", json={"display_name": "x"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
