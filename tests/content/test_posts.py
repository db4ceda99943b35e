"""Post lifecycle, creators, versions, product cards through a deal's whole lifecycle."""

from __future__ import annotations

from datetime import timedelta

from content_helpers import make_creator, make_deal_item, make_merchant, make_product
from sqlalchemy import select

from factories import make_user_with_auth
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.content import CreatorProfile, PostVersion


def test_creator_application_approval_grants_role_and_profile(client, session):
    shopper, headers = make_user_with_auth(session, Role.SHOPPER)
    _op, op_headers = make_user_with_auth(session, Role.OPERATOR)
    r = client.post(
        "/api/v1/creators/applications",
        json={"handle": "xiaomei", "bio": "美妆笔记", "pitch": "I review sunscreen."},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    # A shopper cannot write posts yet.
    r = client.post("/api/v1/posts", json={"type": "article", "title": "x"}, headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "creator_profile_required"
    # Only operators decide.
    assert (
        client.post(
            f"/api/v1/creators/applications/{app_id}/approve", json={}, headers=headers
        ).status_code
        == 403
    )
    r = client.post(
        f"/api/v1/creators/applications/{app_id}/approve", json={"level": 2}, headers=op_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["handle"] == "xiaomei" and r.json()["level"] == 2
    session.expire_all()
    assert session.get(CreatorProfile, shopper.id) is not None
    me = client.get("/api/v1/auth/me", headers=headers)
    if me.status_code == 200:
        assert "creator" in me.json()["roles"]
    # Deciding twice is a conflict; the storefront is public.
    again = client.post(
        f"/api/v1/creators/applications/{app_id}/reject", json={"reason": "x"}, headers=op_headers
    )
    assert again.status_code == 409
    store = client.get("/api/v1/creators/xiaomei")
    assert store.status_code == 200
    assert store.json()["creator"]["follower_count"] == 0


def test_application_refuses_bad_handle_and_unknown_fields(client, session):
    _u, headers = make_user_with_auth(session, Role.SHOPPER)
    r = client.post("/api/v1/creators/applications", json={"handle": "a b"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.handle"
    r = client.post(
        "/api/v1/creators/applications",
        json={"handle": "okname", "level": 5},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.level"


def test_post_lifecycle_draft_publish_edit_unpublish_delete(client, session):
    creator, headers = make_creator(session)
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "My summer kit", "body_markdown": "**Great** sunscreen"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    post = r.json()
    assert post["status"] == "draft" and post["version"] == 1
    assert post["body_html"] == "<p><strong>Great</strong> sunscreen</p>\n"
    pid = post["id"]
    # Drafts are invisible to others.
    assert client.get(f"/api/v1/posts/{pid}").status_code == 404
    r = client.post(f"/api/v1/posts/{pid}/publish", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["post"]["status"] == "published" and r.json()["findings"] == []
    assert client.get(f"/api/v1/posts/{pid}").json()["title"] == "My summer kit"
    # Edit keeps versions.
    r = client.patch(f"/api/v1/posts/{pid}", json={"title": "My summer kit v2"}, headers=headers)
    assert r.status_code == 200 and r.json()["version"] == 2
    versions = client.get(f"/api/v1/posts/{pid}/versions", headers=headers).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["title"] == "My summer kit"
    assert session.scalars(select(PostVersion.version).where(PostVersion.post_id == pid)).all()
    # Another user cannot edit or see versions (404, not 403).
    _other, other_headers = make_creator(session)
    assert (
        client.patch(
            f"/api/v1/posts/{pid}", json={"title": "hacked"}, headers=other_headers
        ).status_code
        == 404
    )
    assert client.get(f"/api/v1/posts/{pid}/versions", headers=other_headers).status_code == 404
    # Unpublish hides, delete removes.
    r = client.post(f"/api/v1/posts/{pid}/unpublish", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "unpublished"
    assert client.get(f"/api/v1/posts/{pid}").status_code == 404
    assert client.delete(f"/api/v1/posts/{pid}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/posts/{pid}", headers=headers).status_code == 404
    # Clients cannot set status or author.
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "x", "status": "published", "author_id": 1},
        headers=headers,
    )
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"body.status", "body.author_id"}
    assert creator.id


def test_post_types_and_size_limits(client, session):
    _c, headers = make_creator(session)
    r = client.post("/api/v1/posts", json={"type": "video", "title": "clip"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "video_url_required"
    r = client.post(
        "/api/v1/posts",
        json={"type": "video", "title": "clip", "video_url": "javascript:alert(1)"},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.video_url"
    r = client.post(
        "/api/v1/posts",
        json={
            "type": "video",
            "title": "clip",
            "video_url": "https://v.example/a.mp4",
            "cover_image_url": "https://img.example/c.jpg",
        },
        headers=headers,
    )
    assert r.status_code == 201
    r = client.post("/api/v1/posts", json={"type": "list", "title": "top 5"}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "cards_required"
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "t" * 201, "body_markdown": "x" * 50_001},
        headers=headers,
    )
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"body.title", "body.body_markdown"}
    r = client.post(
        "/api/v1/posts",
        content=b'{"type": "article", "title": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "x", "cards": [{"product_id": 1}] * 51},
        headers=headers,
    )
    assert r.status_code == 422


def test_list_post_with_cards_checks_products(client, session):
    _c, headers = make_creator(session)
    product, _sku = make_product(session)
    other, _other_sku = make_product(session, title="Other")
    r = client.post(
        "/api/v1/posts",
        json={
            "type": "list",
            "title": "Picks",
            "cards": [
                {"product_id": product.id, "sku_id": _other_sku.id, "note": "wrong sku"},
                {"product_id": 999999, "note": "missing"},
            ],
        },
        headers=headers,
    )
    assert r.status_code == 422
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert fields == ["body.cards.0.sku_id", "body.cards.1.product_id"]
    assert other.id


def test_card_state_through_a_deals_lifecycle(client, session):
    """upcoming (countdown) → live (deal price, stock) → sold out (substitute) → ended."""
    _c, headers = make_creator(session)
    _owner, merchant = make_merchant(session)
    from content_helpers import make_category

    category = make_category(session)
    product, sku = make_product(session, merchant=merchant, category=category)
    deal = make_deal_item(session, product=product, sku=sku, starts_in=timedelta(hours=2))
    sub_product, sub_sku = make_product(
        session, merchant=merchant, category=category, title="Sunscreen SPF30 防晒乳"
    )
    make_deal_item(session, product=sub_product, sku=sub_sku, starts_in=timedelta(hours=-1))
    r = client.post(
        "/api/v1/posts",
        json={
            "type": "list",
            "title": "Beach picks",
            "cards": [{"product_id": product.id, "deal_item_id": deal.id, "note": "我的最爱"}],
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    card = r.json()["cards"][0]
    assert card["status"] == "upcoming"
    assert 7000 < card["seconds_to_start"] <= 7200
    assert card["deal_price_minor"] == 8900 and card["list_price_minor"] == 12900
    assert card["note"] == "我的最爱"
    assert client.post(f"/api/v1/posts/{pid}/publish", headers=headers).json()["post"][
        "status"
    ] == ("published")

    # Live: the deal window opened.
    now = utcnow()
    deal.starts_at = now - timedelta(minutes=5)
    deal.ends_at = now + timedelta(hours=1)
    session.flush()
    card = client.get(f"/api/v1/posts/{pid}").json()["cards"][0]
    assert card["status"] == "live" and card["stock_left"] == 10
    assert 3500 < card["seconds_to_end"] <= 3600 and card["substitutes"] == []

    # Sold out: a similar item still on sale is offered.
    deal.available, deal.sold = 0, 10
    session.flush()
    card = client.get(f"/api/v1/posts/{pid}").json()["cards"][0]
    assert card["status"] == "sold_out" and card["sold_out"] is True and card["stock_left"] == 0
    assert [s["product_id"] for s in card["substitutes"]] == [sub_product.id]

    # Ended.
    deal.ends_at = now - timedelta(seconds=1)
    session.flush()
    card = client.get(f"/api/v1/posts/{pid}").json()["cards"][0]
    assert card["status"] == "ended"
    assert [s["product_id"] for s in card["substitutes"]] == [sub_product.id]


def test_merchant_shop_post_only_for_own_shop_and_products(client, session):
    owner, merchant = make_merchant(session)
    from factories import bearer

    headers = bearer(session, owner)
    own, _ = make_product(session, merchant=merchant)
    foreign, _ = make_product(session)
    _other_owner, other_merchant = make_merchant(session)
    r = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "店铺上新", "merchant_id": other_merchant.id},
        headers=headers,
    )
    assert r.status_code == 404
    r = client.post(
        "/api/v1/posts",
        json={
            "type": "list",
            "title": "店铺上新",
            "merchant_id": merchant.id,
            "cards": [{"product_id": foreign.id}],
        },
        headers=headers,
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/posts",
        json={
            "type": "list",
            "title": "店铺上新",
            "merchant_id": merchant.id,
            "cards": [{"product_id": own.id}],
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["author_kind"] == "merchant" and r.json()["merchant_id"] == merchant.id
