"""Festivals and campaigns: sign-up rules with reasons, review, the time-driven lifecycle
with every transition recorded, stock taken from and returned to the SKU, live cards."""

from __future__ import annotations

from datetime import timedelta

from juxing.catalog import service as catalog
from juxing.deals import service
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.catalog import Sku


def iso(dt):
    return dt.isoformat()


def test_signup_review_lifecycle_over_http(client, session, builders):
    _build, make_user = builders
    from factories import bearer

    op = make_user(session, Role.OPERATOR)
    mu = make_user(session, Role.MERCHANT)
    oh, mh = bearer(session, op), bearer(session, mu)
    now = utcnow()
    f = client.post(
        "/api/v1/festivals",
        headers=oh,
        json={
            "name": "Star Festival",
            "name_zh": "聚星节",
            "slug": "star-test",
            "theme": "stars",
            "starts_at": iso(now - timedelta(hours=1)),
            "ends_at": iso(now + timedelta(days=3)),
        },
    )
    assert f.status_code == 201, f.text
    assert (
        client.post(
            "/api/v1/festivals",
            headers=mh,
            json={"name": "Mine", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=1))},
        ).status_code
        == 403
    )
    m = client.post("/api/v1/merchants", headers=mh, json={"name": "Lamp House"}).json()
    p = client.post(
        "/api/v1/products",
        headers=mh,
        json={
            "merchant_id": m["id"],
            "title": "Moon lamp",
            "skus": [{"name": "Small", "list_price_minor": 10_000, "stock": 50}],
        },
    ).json()
    sku_id = p["skus"][0]["id"]
    c = client.post(
        "/api/v1/campaigns",
        headers=mh,
        json={"festival_id": f.json()["id"], "merchant_id": m["id"], "title": "Moon week"},
    )
    assert c.status_code == 201 and c.json()["status"] == "draft"
    cid = c.json()["id"]
    base = {
        "sku_id": sku_id,
        "deal_price_minor": 6_000,
        "deal_stock": 20,
        "per_user_limit": 2,
        "starts_at": iso(now + timedelta(minutes=10)),
        "ends_at": iso(now + timedelta(days=1)),
    }
    # every broken rule is refused with its reason
    bad = client.post(
        f"/api/v1/campaigns/{cid}/items", headers=mh, json={**base, "deal_price_minor": 10_000}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "deal_price_not_below_list"
    bad = client.post(f"/api/v1/campaigns/{cid}/items", headers=mh, json={**base, "deal_stock": 51})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "stock_not_available"
    bad = client.post(
        f"/api/v1/campaigns/{cid}/items",
        headers=mh,
        json={**base, "ends_at": iso(now + timedelta(days=5))},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "window_outside_festival"
    bad = client.post(f"/api/v1/campaigns/{cid}/items", headers=mh, json={**base, "status": "live"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "body.status"
    ok = client.post(f"/api/v1/campaigns/{cid}/items", headers=mh, json=base)
    assert ok.status_code == 201, ok.text
    # another merchant sees nothing of it
    other = bearer(session, make_user(session, Role.MERCHANT))
    assert client.get(f"/api/v1/campaigns/{cid}", headers=other).status_code == 404
    assert client.post(f"/api/v1/campaigns/{cid}/submit", headers=other).status_code == 404
    sub = client.post(f"/api/v1/campaigns/{cid}/submit", headers=mh)
    assert sub.json()["status"] == "submitted"
    assert session.get(Sku, sku_id).stock == 30, "deal stock is taken out of the SKU"
    assert client.post(f"/api/v1/campaigns/{cid}/approve", headers=mh).status_code == 403
    rej = client.post(
        f"/api/v1/campaigns/{cid}/reject", headers=oh, json={"reason": "Photos are missing"}
    )
    assert (
        rej.json()["status"] == "rejected" and rej.json()["reject_reason"] == "Photos are missing"
    )
    session.expire_all()
    assert session.get(Sku, sku_id).stock == 50, "rejection returns the stock"
    assert client.post(f"/api/v1/campaigns/{cid}/revise", headers=mh).json()["status"] == "draft"
    client.post(f"/api/v1/campaigns/{cid}/submit", headers=mh)
    appr = client.post(f"/api/v1/campaigns/{cid}/approve", headers=oh)
    assert appr.json()["status"] == "scheduled"
    again = client.post(f"/api/v1/campaigns/{cid}/approve", headers=oh)
    assert again.status_code == 409 and again.json()["error"]["code"] == "campaign_wrong_status"
    # time drives it: live, then ended (unsold units back to the SKU)
    assert service.advance_campaigns(session=session, now=now + timedelta(minutes=11)) == 1
    assert client.get(f"/api/v1/deal-items/{ok.json()['id']}").json()["status"] == "upcoming"
    card = service.card_states(
        session=session, deal_item_ids=[ok.json()["id"]], now=now + timedelta(minutes=11)
    )["deal_items"][ok.json()["id"]]
    assert card["status"] == "live" and card["stock_left"] == 20
    assert service.advance_campaigns(session=session, now=now + timedelta(days=2)) == 1
    session.expire_all()
    assert session.get(Sku, sku_id).stock == 50
    steps = client.get(f"/api/v1/campaigns/{cid}/transitions", headers=mh).json()
    assert [s["to_status"] for s in steps] == [
        "draft",
        "submitted",
        "rejected",
        "draft",
        "submitted",
        "approved",
        "scheduled",
        "live",
        "ended",
    ]
    assert steps[2]["reason"] == "Photos are missing" and steps[2]["actor_id"] == op.id
    assert client.get("/api/v1/campaigns?status=ended", headers=oh).json()["total"] >= 1


def test_card_states_and_similar(session, world_factory):
    w = world_factory(stock=3)
    cards = service.card_states(session=session, sku_ids=[w.sku_id], deal_item_ids=[w.deal_item_id])
    card = cards["deal_items"][w.deal_item_id]
    assert card["status"] == "live" and card["deal_price_minor"] == 5_900
    assert card["list_price_minor"] == 10_000 and card["stock_left"] == 3
    assert cards["skus"][w.sku_id]["deal_item_id"] == w.deal_item_id
    later = service.card_states(
        session=session, deal_item_ids=[w.deal_item_id], now=utcnow() + timedelta(hours=7)
    )
    assert later["deal_items"][w.deal_item_id]["status"] == "ended"
    upcoming = world_factory(starts_in_s=600)
    up = service.card_states(session=session, deal_item_ids=[upcoming.deal_item_id])
    assert up["deal_items"][upcoming.deal_item_id]["status"] == "upcoming"
    merchant = session.get(catalog.Merchant, upcoming.merchant_id)
    plain = catalog.create_product(
        session=session,
        user=upcoming.merchant_user,
        merchant_id=merchant.id,
        title="Plain lamp",
        skus=[{"name": "One", "list_price_minor": 100, "stock": 1}],
    )
    regular = service.card_states(session=session, sku_ids=[plain.skus[0].id])
    assert regular["skus"][plain.skus[0].id]["status"] == "on_sale", "sold at its list price"
    assert regular["skus"][plain.skus[0].id]["deal_price_minor"] is None
    # a SKU whose deal has ended is still sold regularly
    ended = service.card_states(
        session=session, sku_ids=[w.sku_id], now=utcnow() + timedelta(hours=7)
    )
    assert ended["skus"][w.sku_id]["status"] == "on_sale"
    plain.skus[0].stock = 0
    session.flush()
    gone = service.card_states(session=session, sku_ids=[plain.skus[0].id])
    assert gone["skus"][plain.skus[0].id]["status"] == "not_on_sale", "out of stock"
    plain.skus[0].stock = 1
    plain.status = "archived"
    session.flush()
    gone = service.card_states(session=session, sku_ids=[plain.skus[0].id])
    assert gone["skus"][plain.skus[0].id]["status"] == "not_on_sale", "inactive product"
    plain.status = "active"
    session.flush()
    similar = catalog.similar_on_sale(session=session, product_id=upcoming.product_id, limit=3)
    assert {"product_id": plain.id, "title": "Plain lamp", "deal_item_id": None} in similar


def test_festival_page_lists_live_deals(client, world):
    cards = client.get(f"/api/v1/festivals/{world.festival_id}/deals").json()
    assert [c["deal_item_id"] for c in cards] == [world.deal_item_id]
    assert cards[0]["status"] == "live"
