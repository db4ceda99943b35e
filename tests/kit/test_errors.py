"""Bad input is a 4xx in the one envelope, with field paths; never a 500."""

from __future__ import annotations

import pytest


def _assert_envelope(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_bad_json_is_400(client):
    r = client.post(
        "/api/v1/accounts/register",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    _assert_envelope(r, 400, "invalid_json")


def test_missing_fields_are_listed_with_paths(client):
    err = _assert_envelope(
        client.post("/api/v1/accounts/register", json={}), 422, "validation_error"
    )
    fields = {d["field"] for d in err["details"]}
    assert fields == {"body.email", "body.password", "body.display_name"}


def test_wrong_types(client):
    r = client.post(
        "/api/v1/accounts/register", json={"email": 5, "password": ["x"], "display_name": {"a": 1}}
    )
    err = _assert_envelope(r, 422, "validation_error")
    assert {d["field"] for d in err["details"]} == {
        "body.email",
        "body.password",
        "body.display_name",
    }


def test_bad_query_parameter(client, session):
    from factories import make_user_with_auth
    from juxing.models.accounts import Role

    _op, headers = make_user_with_auth(session, Role.OPERATOR)
    session.commit()
    r = client.get("/api/v1/accounts/users?limit=100000", headers=headers)
    err = _assert_envelope(r, 422, "validation_error")
    assert err["details"][0]["field"] == "query.limit"


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"text"', b"123"])
def test_non_object_bodies(client, body):
    r = client.post(
        "/api/v1/accounts/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    assert "error" in r.json()


def test_unexpected_error_is_500_in_envelope_without_details(app, client):
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    r = client.get("/boom")
    err = _assert_envelope(r, 500, "internal_error")
    assert "secret" not in r.text
    assert err["details"] is None


def test_ids_beyond_64_bits_are_422_not_500(client, session):
    from factories import make_user_with_auth

    _user, headers = make_user_with_auth(session)
    session.commit()
    r = client.delete(f"/api/v1/auth/tokens/{2**70}", headers=headers)
    _assert_envelope(r, 422, "invalid_value")


def test_nul_character_in_text_is_4xx(client):
    r = client.post(
        "/api/v1/accounts/register",
        json={"email": "nul@example.test", "password": "long enough pw", "display_name": "a\x00b"},
    )
    assert 400 <= r.status_code < 500, r.text
