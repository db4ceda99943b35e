"""Follows and the inbox; XSS payloads rendered inert; uploads checked by content."""

from __future__ import annotations

import io

import pytest
from content_helpers import make_creator, make_merchant
from PIL import Image

from factories import bearer, make_user_with_auth
from juxing.models.accounts import Role

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    '![x](https://img.example/a.png" onerror="alert(1))',
    "<iframe src=https://evil.example></iframe>",
    "<svg><script>alert(1)</script></svg>",
    "<style>body{display:none}</style>",
    "[vb](vbscript:msgbox(1))",
]


def test_follow_inbox_new_posts_and_go_live(client, session):
    creator, c_headers = make_creator(session)
    owner, merchant = make_merchant(session)
    m_headers = bearer(session, owner)
    _fan, fan_headers = make_user_with_auth(session, Role.SHOPPER)
    _stranger, s_headers = make_user_with_auth(session, Role.SHOPPER)

    r = client.post(
        "/api/v1/follows", json={"target_kind": "creator", "target_id": creator.id},
        headers=fan_headers,
    )  # fmt: skip
    assert r.status_code == 201
    again = client.post(
        "/api/v1/follows", json={"target_kind": "creator", "target_id": creator.id},
        headers=fan_headers,
    )  # fmt: skip
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    r = client.post(
        "/api/v1/follows", json={"target_kind": "merchant", "target_id": merchant.id},
        headers=fan_headers,
    )  # fmt: skip
    assert r.status_code == 201
    assert client.post(
        "/api/v1/follows", json={"target_kind": "creator", "target_id": 987654},
        headers=fan_headers,
    ).status_code == 404  # fmt: skip
    store = client.get(f"/api/v1/creators/{creator.id}").json()
    assert store["creator"]["follower_count"] == 1

    # The creator publishes; the merchant publishes a shop post; the creator goes live.
    pid = client.post(
        "/api/v1/posts", json={"type": "article", "title": "新品测评"}, headers=c_headers
    ).json()["id"]
    client.post(f"/api/v1/posts/{pid}/publish", headers=c_headers)
    shop = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "Shop news", "merchant_id": merchant.id},
        headers=m_headers,
    ).json()["id"]
    client.post(f"/api/v1/posts/{shop}/publish", headers=m_headers)
    room = client.post(
        "/api/v1/live-rooms",
        json={"title": "今晚8点直播", "scheduled_at": "2030-01-01T12:00:00+00:00"},
        headers=c_headers,
    ).json()["id"]
    assert client.post(f"/api/v1/live-rooms/{room}/start", headers=c_headers).status_code == 200

    inbox = client.get("/api/v1/inbox", headers=fan_headers).json()
    kinds = [(i["kind"], i["post_id"], i["live_room_id"]) for i in inbox["items"]]
    assert kinds == [
        ("live_started", None, room),
        ("new_post", shop, None),
        ("new_post", pid, None),
    ]
    assert inbox["unread"] == 3
    # Strangers get nothing.
    assert client.get("/api/v1/inbox", headers=s_headers).json()["total"] == 0
    # Mark read.
    r = client.post("/api/v1/inbox/read", json={}, headers=fan_headers)
    assert r.json() == {"marked": 3}
    assert client.get("/api/v1/inbox?unread_only=true", headers=fan_headers).json()["total"] == 0

    # Unfollow: counter back down, later posts do not arrive.
    assert (
        client.delete(f"/api/v1/follows/creator/{creator.id}", headers=fan_headers).status_code
        == 204
    )
    assert (
        client.delete(f"/api/v1/follows/creator/{creator.id}", headers=fan_headers).status_code
        == 404
    )
    assert client.get(f"/api/v1/creators/{creator.id}").json()["creator"]["follower_count"] == 0
    later = client.post(
        "/api/v1/posts", json={"type": "article", "title": "later"}, headers=c_headers
    ).json()["id"]
    client.post(f"/api/v1/posts/{later}/publish", headers=c_headers)
    assert client.get("/api/v1/inbox", headers=fan_headers).json()["total"] == 3
    # Cannot follow yourself.
    assert client.post(
        "/api/v1/follows", json={"target_kind": "creator", "target_id": creator.id},
        headers=c_headers,
    ).status_code == 422  # fmt: skip


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payloads_are_rendered_inert(client, session, payload):
    _c, headers = make_creator(session)
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "x", "body_markdown": f"hello\n\n{payload}\n"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    tags, attrs = _live_markup(r.json()["body_html"])
    assert tags <= {"p", "a", "img", "strong", "em", "code", "pre"}, tags
    for tag, name, value in attrs:
        assert not name.startswith("on"), (tag, name)
        if name in {"href", "src"}:
            assert value.split(":", 1)[0].lower() in {"http", "https", "mailto"}, value


def _live_markup(html: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The elements and attributes a browser would build from ``html``."""
    from html.parser import HTMLParser

    tags: set[str] = set()
    attrs: list[tuple[str, str, str]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attributes):
            tags.add(tag)
            attrs.extend((tag, k.lower(), v or "") for k, v in attributes)

    Collect().feed(html)
    return tags, attrs


def _png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_image_upload_checked_by_content_and_size(client, session, settings, tmp_path):
    settings.data_dir = tmp_path
    _c, headers = make_creator(session)
    r = client.post(
        "/api/v1/content/media",
        files={"file": ("avatar.txt", _png(), "text/plain")},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_type"] == "image/png" and body["width"] == 8
    got = client.get(body["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == _png()
    # A script named .png is refused.
    r = client.post(
        "/api/v1/content/media",
        files={"file": ("cute.png", b"<script>alert(1)</script>", "image/png")},
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
    # Too large.
    big = b"\x89PNG" + b"0" * (settings.upload_max_bytes + 10)
    r = client.post(
        "/api/v1/content/media", files={"file": ("big.png", big, "image/png")}, headers=headers
    )
    assert r.status_code == 413
    # Path tricks are 404.
    assert client.get("/api/v1/content/media/..%2F..%2Fetc%2Fpasswd").status_code == 404
    # Anonymous uploads are refused.
    r = client.post("/api/v1/content/media", files={"file": ("a.png", _png(), "image/png")})
    assert r.status_code == 401
