"""The web shell over HTTP (no browser): sign-in, role pages, CSRF, languages, HTML errors."""

from __future__ import annotations

import re

import pytest

from factories import PASSWORD, make_user
from juxing.models.accounts import Role
from juxing.web.i18n import choose_locale, missing_messages, normalize
from juxing.web.pages import HERE


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client, email: str, password: str = PASSWORD):
    token = csrf_of(client.get("/signin").text)
    return client.post(
        "/signin",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_home_renders_for_visitors(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert 'href="/static/juxing.css"' in r.text
    assert "/static/vendor/htmx.min.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("roles", "landing"),
    [
        ((Role.SHOPPER,), "/"),
        ((Role.CREATOR, Role.SHOPPER), "/studio"),
        ((Role.MERCHANT,), "/merchant"),
        ((Role.OPERATOR,), "/ops"),
    ],
)
def test_sign_in_lands_on_the_role_page(client, session, roles, landing):
    user = make_user(session, *roles)
    session.commit()
    r = sign_in(client, user.email)
    assert r.status_code == 303
    assert r.headers["location"] == landing
    page = client.get(landing)
    assert page.status_code == 200
    assert user.display_name in page.text


def test_wrong_password_rerenders_the_form(client, session):
    user = make_user(session)
    session.commit()
    r = sign_in(client, user.email, "wrong-password")
    assert r.status_code == 400
    assert "Wrong email or password." in r.text
    assert 'aria-invalid="true"' in r.text


def test_sign_in_without_csrf_is_refused(client, session):
    user = make_user(session)
    session.commit()
    client.get("/signin")
    r = client.post("/signin", data={"email": user.email, "password": PASSWORD})
    assert r.status_code == 403
    assert "CSRF" in r.text


def test_next_must_be_a_local_path(client, session):
    user = make_user(session)
    session.commit()
    token = csrf_of(client.get("/signin").text)
    r = client.post(
        "/signin",
        data={
            "email": user.email,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_role_pages_need_sign_in_and_the_role(client, session):
    r = client.get("/ops", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=%2Fops"
    shopper = make_user(session, Role.SHOPPER)
    session.commit()
    sign_in(client, shopper.email)
    for path in ("/ops", "/merchant", "/studio"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Not allowed" in r.text


def test_sign_out(client, session):
    user = make_user(session, Role.MERCHANT)
    session.commit()
    sign_in(client, user.email)
    token = csrf_of(client.get("/merchant").text)
    r = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/merchant", follow_redirects=False).status_code == 303


def test_language_switch_sets_cookie_and_account_locale(client, session):
    user = make_user(session, Role.OPERATOR)
    session.commit()
    sign_in(client, user.email)
    page = client.get("/ops")
    assert "Operator console" in page.text
    r = client.post(
        "/lang",
        data={"locale": "zh-CN", "next": "/ops", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "juxing_lang=zh-CN" in r.headers["set-cookie"]
    page = client.get("/ops")
    assert '<html lang="zh-CN">' in page.text
    assert "运营后台" in page.text
    session.expire_all()
    session.refresh(user)
    assert user.locale == "zh-CN"


def test_accept_language_chooses_chinese_for_visitors(client):
    r = client.get("/signin", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert "登录" in r.text
    r = client.get("/signin", headers={"Accept-Language": "fr-FR, en;q=0.5"})
    assert "Sign in" in r.text


def test_locale_tags_normalize():
    assert normalize("zh-Hans-CN") == "zh-CN"
    assert normalize("en_GB") == "en"
    assert normalize("fr") is None


def test_choose_locale_prefers_account_then_cookie(client, session):
    class Req:
        def __init__(self, cookies, headers):
            self.cookies, self.headers = cookies, headers

    user = make_user(session)
    user.locale = "zh-CN"
    assert choose_locale(Req({"juxing_lang": "en"}, {}), user) == "zh-CN"
    assert choose_locale(Req({"juxing_lang": "zh-CN"}, {}), None) == "zh-CN"
    assert choose_locale(Req({}, {"accept-language": "en-US"}), None) == "en"


def test_every_message_has_a_chinese_translation():
    assert missing_messages(HERE) == set()


def test_unknown_page_is_an_html_404_and_api_keeps_json(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_static_assets_are_shipped(client):
    for path in ("/static/juxing.css", "/static/juxing.js", "/static/vendor/htmx.min.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200
