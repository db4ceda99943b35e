"""Accounts: registration, sign-in, tokens, roles and ownership."""

from __future__ import annotations

from factories import PASSWORD, bearer, make_user, make_user_with_auth
from juxing.models.accounts import Role


def test_register_then_token_login(client):
    r = client.post(
        "/api/v1/accounts/register",
        json={"email": "Ann@Example.test", "password": "long enough pw", "display_name": "Ann"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["roles"] == ["shopper"]
    assert r.json()["email"] == "ann@example.test"
    t = client.post(
        "/api/v1/auth/token", json={"email": "ann@example.test", "password": "long enough pw"}
    )
    assert t.status_code == 201
    token = t.json()["token"]
    me = client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "ann@example.test"


def test_register_cannot_grant_roles(client):
    r = client.post(
        "/api/v1/accounts/register",
        json={
            "email": "eve@example.test",
            "password": "long enough pw",
            "display_name": "Eve",
            "roles": ["operator"],
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.roles"


def test_duplicate_email_is_409(client, session):
    make_user(session, email="dup@example.test")
    session.commit()
    r = client.post(
        "/api/v1/accounts/register",
        json={"email": "dup@example.test", "password": "long enough pw", "display_name": "Dup"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"


def test_wrong_password_and_unknown_email_look_the_same(client, session):
    make_user(session, email="bob@example.test")
    session.commit()
    a = client.post("/api/v1/auth/login", json={"email": "bob@example.test", "password": "nope"})
    b = client.post("/api/v1/auth/login", json={"email": "who@example.test", "password": "nope"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_cookie_session_requires_csrf_for_writes(client, session):
    make_user(session, email="web@example.test")
    session.commit()
    r = client.post("/api/v1/auth/login", json={"email": "web@example.test", "password": PASSWORD})
    assert r.status_code == 200
    csrf = r.json()["csrf_token"]
    assert "juxing_session" in client.cookies
    assert client.get("/api/v1/accounts/me").status_code == 200
    no_csrf = client.patch("/api/v1/accounts/me", json={"display_name": "Webby"})
    assert no_csrf.status_code == 403
    assert no_csrf.json()["error"]["code"] == "csrf_failed"
    ok = client.patch(
        "/api/v1/accounts/me", json={"display_name": "Webby"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status_code == 200
    assert ok.json()["display_name"] == "Webby"
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/accounts/me").status_code == 401


def test_session_cookie_flags(client, session, settings):
    make_user(session, email="flags@example.test")
    session.commit()
    r = client.post(
        "/api/v1/auth/login", json={"email": "flags@example.test", "password": PASSWORD}
    )
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_token_lifecycle_and_revocation(client, session):
    _user, headers = make_user_with_auth(session)
    session.commit()
    created = client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=headers)
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("jx_")
    listed = client.get("/api/v1/auth/tokens", headers=headers).json()
    assert [t["name"] for t in listed] == ["test", "ci"]
    assert all("token" not in t for t in listed)
    r = client.delete(f"/api/v1/auth/tokens/{created.json()['id']}", headers=headers)
    assert r.json()["revoked_at"] is not None
    assert (
        client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {raw}"}).status_code
        == 401
    )


def test_cannot_revoke_another_users_token(client, session):
    _alice, alice_headers = make_user_with_auth(session)
    _bob, bob_headers = make_user_with_auth(session)
    session.commit()
    bobs = client.get("/api/v1/auth/tokens", headers=bob_headers).json()[0]
    r = client.delete(f"/api/v1/auth/tokens/{bobs['id']}", headers=alice_headers)
    assert r.status_code == 404
    assert client.get("/api/v1/accounts/me", headers=bob_headers).status_code == 200


def test_tokens_are_stored_hashed(client, session):
    from sqlalchemy import select

    from juxing.models.accounts import ApiToken

    user, headers = make_user_with_auth(session)
    session.commit()
    raw = headers["Authorization"].split()[1]
    stored = session.scalars(select(ApiToken.token_hash).where(ApiToken.user_id == user.id)).all()
    assert raw not in stored
    assert all(len(h) == 64 for h in stored)


def test_bad_authorization_header(client):
    r = client.get("/api/v1/accounts/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    r = client.get("/api/v1/accounts/me", headers={"Authorization": "Bearer jx_forged"})
    assert r.status_code == 401


def test_shopper_cannot_use_operator_endpoints(client, session):
    _user, headers = make_user_with_auth(session, Role.SHOPPER, Role.CREATOR, Role.MERCHANT)
    session.commit()
    r = client.get("/api/v1/accounts/users", headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "role_required"
    r = client.post(
        "/api/v1/accounts/users",
        headers=headers,
        json={
            "email": "x@example.test",
            "password": "long enough pw",
            "display_name": "X",
            "roles": ["operator"],
        },
    )
    assert r.status_code == 403


def test_operator_manages_users(client, session):
    _op, headers = make_user_with_auth(session, Role.OPERATOR)
    target = make_user(session)
    session.commit()
    r = client.patch(
        f"/api/v1/accounts/users/{target.id}",
        json={"roles": ["shopper", "merchant"]},
        headers=headers,
    )
    assert r.status_code == 200
    assert r.json()["roles"] == ["merchant", "shopper"]
    listed = client.get("/api/v1/accounts/users?role=merchant", headers=headers).json()
    assert [u["id"] for u in listed["items"]] == [target.id]
    r = client.patch(
        f"/api/v1/accounts/users/{target.id}", json={"is_active": False}, headers=headers
    )
    assert r.json()["is_active"] is False
    target_headers = bearer(session, target)
    session.commit()
    assert client.get("/api/v1/accounts/me", headers=target_headers).status_code == 401


def test_me_cannot_change_roles_or_email(client, session):
    _user, headers = make_user_with_auth(session)
    session.commit()
    r = client.patch("/api/v1/accounts/me", json={"roles": ["operator"]}, headers=headers)
    assert r.status_code == 422
    r = client.patch("/api/v1/accounts/me", json={"email": "new@example.test"}, headers=headers)
    assert r.status_code == 422
