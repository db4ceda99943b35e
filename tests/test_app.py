"""The application shell: health, readiness, docs, the error envelope, headers."""

from __future__ import annotations

import pytest


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert len(r.headers["x-request-id"]) == 32


def test_request_id_is_kept(client):
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_readyz_checks_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["database"] == "ok"


@pytest.mark.redis
def test_readyz_checks_redis_when_configured(settings, db, redis_url):
    from fastapi.testclient import TestClient

    from juxing.app import create_app

    app = create_app(settings.model_copy(update={"redis_url": redis_url}), db=db)
    with TestClient(app) as c:
        body = c.get("/readyz").json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}

    broken = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), db=db)
    with TestClient(broken) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["redis"].startswith("error")


def test_openapi_and_docs_are_served_without_cdn(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/accounts/me" in spec["paths"]
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "/api/docs-static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/api/docs-static/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_is_404_in_envelope(client):
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert set(r.json()["error"]) == {"code", "message", "details"}


def test_wrong_method_is_405_in_envelope(client):
    r = client.delete("/healthz")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_security_headers(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in r.headers["content-security-policy"]
