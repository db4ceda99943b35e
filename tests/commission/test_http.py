"""Over HTTP: links, the click endpoint (forged/altered tokens), payouts with
Idempotency-Key, holds, statements and the reconciliation endpoint."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from factories import make_user_with_auth
from juxing.commission import service
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.commission import Click, Commission, CommissionRule


def test_link_click_redirect_cookie_and_forged_tokens(client, session, world):
    merchant = world.merchant()
    product = world.product(merchant)
    creator, headers = make_user_with_auth(session, Role.CREATOR)
    r = client.post(
        "/api/v1/commission/links",
        json={"target_type": "product", "target_id": product.id},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["url"].endswith(f"/t/{token}")
    again = client.post(
        "/api/v1/commission/links",
        json={"target_type": "product", "target_id": product.id},
        headers=headers,
    )
    assert again.json()["id"] == r.json()["id"]
    # Clients cannot smuggle fields in.
    bad = client.post(
        "/api/v1/commission/links",
        json={"target_type": "product", "target_id": product.id, "creator_id": 1},
        headers=headers,
    )
    assert bad.status_code == 422

    ok = client.get(
        f"/t/{token}",
        follow_redirects=False,
        headers={"referer": "https://weibo.test/x", "user-agent": "UA"},
    )
    assert ok.status_code == 302 and ok.headers["location"] == f"/products/{product.id}"
    assert "juxing_vid" in ok.cookies
    (c,) = session.scalars(select(Click))
    assert c.creator_id == creator.id and c.referrer == "https://weibo.test/x" and c.visitor_id
    assert len(c.ip_hash) == 32 and "127.0.0.1" not in c.ip_hash

    code, sig = token.split(".")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for forged in (
        f"{code}.{flipped}",
        f"{code[:-1]}{'A' if code[-1] != 'A' else 'B'}.{sig}",
        "AAAAAAAA.0123456789abcdef",
        "x",
    ):
        assert client.get(f"/t/{forged}", follow_redirects=False).status_code == 404
    # Altering the stored link (another creator) breaks its signature too.
    other, _ = make_user_with_auth(session, Role.CREATOR)
    session.execute(text("UPDATE tracking_links SET creator_id = :o"), {"o": other.id})
    assert client.get(f"/t/{token}", follow_redirects=False).status_code == 404
    assert len(session.scalars(select(Click)).all()) == 1


def test_payout_is_idempotent_over_http(client, session, world):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=1000)
    )
    creator, headers = make_user_with_auth(session, Role.CREATOR)
    shopper, _ = make_user_with_auth(session, Role.SHOPPER)
    world.click(world.link(creator, product), shopper=shopper)
    order = world.place(shopper, merchant, [(product, 100_000)])
    world.pay(order)
    t = utcnow()
    world.receive(order, at=t)
    service.mature_due(session, at=t + timedelta(days=8))
    assert (
        client.get("/api/v1/commission/earnings", headers=headers).json()["available_minor"] == 9000
    )

    key = {**headers, "Idempotency-Key": "payout-1"}
    first = client.post("/api/v1/commission/payouts", json={"currency": "CNY"}, headers=key)
    assert first.status_code == 201, first.text
    second = client.post("/api/v1/commission/payouts", json={"currency": "CNY"}, headers=key)
    assert second.status_code == 201 and second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json() and first.json()["amount_minor"] == 9000
    reused = client.post(
        "/api/v1/commission/payouts", json={"currency": "CNY", "amount_minor": 5}, headers=key
    )
    assert reused.status_code == 422
    other = client.post(
        "/api/v1/commission/payouts",
        json={"currency": "CNY"},
        headers={**headers, "Idempotency-Key": "payout-2"},
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "payout_below_minimum"
    earnings = client.get("/api/v1/commission/earnings", headers=headers).json()
    assert earnings["available_minor"] == 0
    pid = first.json()["id"]
    st = client.get(f"/api/v1/commission/payouts/{pid}/statement", headers=headers).json()
    assert st["closing_minor"] == 0 and st["lines"][-1]["amount_minor"] == -9000
    csv = client.get(f"/api/v1/commission/payouts/{pid}/statement?format=csv", headers=headers)
    assert csv.headers["content-type"].startswith("text/csv") and "payout_request" in csv.text
    # Another creator cannot see it.
    _, stranger = make_user_with_auth(session, Role.CREATOR)
    assert client.get(f"/api/v1/commission/payouts/{pid}", headers=stranger).status_code == 404
    # The operator settles it; reconciliation over HTTP is clean.
    _, op = make_user_with_auth(session, Role.OPERATOR)
    assert (
        client.post(
            f"/api/v1/commission/payouts/{pid}/settle", json={"outcome": "paid"}, headers=op
        ).json()["status"]
        == "paid"
    )
    run = client.post("/api/v1/ledger/reconciliations", headers=op).json()
    assert run["ok"] is True and run["checked_entries"] > 0


def test_statements_attribution_and_holds_endpoints(client, session, world, monkeypatch):
    from juxing.commission.policy import POLICY

    monkeypatch.setattr(POLICY, "flood_clicks_per_hour", 2)
    owner, mh = make_user_with_auth(session, Role.MERCHANT)
    merchant = world.merchant(owner)
    product = world.product(merchant)
    r = client.put(
        f"/api/v1/commission/merchants/{merchant.id}/rules",
        json={"scope": "merchant", "rate_bp": 500, "window_days": 10},
        headers=mh,
    )
    assert r.status_code == 200, r.text
    _, other_m = make_user_with_auth(session, Role.MERCHANT)
    assert (
        client.get(f"/api/v1/commission/merchants/{merchant.id}/rules", headers=other_m).status_code
        == 404
    )
    creator, ch = make_user_with_auth(session, Role.CREATOR)
    shopper, sh = make_user_with_auth(session, Role.SHOPPER)
    link = world.link(creator, product)
    for _ in range(3):
        world.click(link, shopper=shopper, ip="9.9.9.9")
    order = world.place(shopper, merchant, [(product, 40_000)])
    world.pay(order)
    expl = client.get(f"/api/v1/commission/orders/{order.id}/attribution", headers=sh).json()
    assert (
        expl["lines"][0]["attributed"] is True
        and "10-day window" in expl["lines"][0]["explanation"]
    )
    assert (
        client.get(f"/api/v1/commission/orders/{order.id}/attribution", headers=ch).status_code
        == 404
    )
    mine = client.get("/api/v1/commission/commissions", headers=ch).json()
    assert mine["total"] == 1 and mine["items"][0]["status"] == "held" and mine["items"][0]["flags"]
    _, op = make_user_with_auth(session, Role.OPERATOR)
    holds = client.get("/api/v1/commission/holds", headers=op).json()
    cid = holds["items"][0]["commission"]["id"]
    assert (
        client.post(
            f"/api/v1/commission/holds/{cid}/release", json={"reason": "ok"}, headers=op
        ).status_code
        == 422
    )
    rel = client.post(
        f"/api/v1/commission/holds/{cid}/release", json={"reason": "verified shopper"}, headers=op
    )
    assert rel.status_code == 200 and rel.json()["status"] == "pending"
    assert (
        client.post(
            f"/api/v1/commission/holds/{cid}/void", json={"reason": "too late"}, headers=op
        ).status_code
        == 409
    )
    st = client.get(f"/api/v1/commission/statements/merchants/{merchant.id}", headers=mh).json()
    assert st["total_commission_minor"] == 2000
    csv = client.get("/api/v1/commission/statements/creator?format=csv", headers=ch)
    assert csv.status_code == 200 and str(order.id) in csv.text
    assert session.scalar(select(Commission.status)) == "pending"


def test_click_flood_is_rate_limited_and_what_gets_through_still_holds(
    settings, db, session, world, monkeypatch
):
    """A flood is answered 429 past the per-IP click limit; the clicks that got through are
    recorded and still trip the click-flood fraud rule."""
    from fastapi.testclient import TestClient

    from juxing.app import create_app
    from juxing.commission import links
    from juxing.commission.policy import POLICY
    from juxing.models.commission import FraudFlag

    monkeypatch.setattr(POLICY, "flood_clicks_per_hour", 5)
    limited = settings.model_copy(
        update={"rate_limits": {"click": "1000/3600,8/3600"}, "rate_limits_enabled": True}
    )
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=1000)
    )
    creator = make_user_with_auth(session, Role.CREATOR)[0]
    link = world.link(creator, product)
    session.flush()
    token = links.token_of(link)
    with TestClient(create_app(limited, db=db), raise_server_exceptions=False) as c:
        codes = [c.get(f"/t/{token}", follow_redirects=False).status_code for _ in range(12)]
    assert codes[:8] == [302] * 8 and set(codes[8:]) == {429}
    flood = list(session.scalars(select(Click).where(Click.link_id == link.id)))
    assert len(flood) == 8  # what got through is recorded; 429s record nothing
    shopper = make_user_with_auth(session, Role.SHOPPER)[0]
    links.record_click(  # the shopper's own click, from the same address as the flood
        session,
        link=link,
        secret_key=settings.secret_key,
        shopper_id=shopper.id,
        visitor_id=None,
        ip="testclient",
        fingerprint="another device",
        referrer=None,
        at=utcnow(),  # after the flood: the rule looks back one hour from the click
    )
    order = world.place(shopper, merchant, [(product, 20_000)])
    world.pay(order)
    (held,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
    assert held.status == "held"
    assert "click_flood" in {f.rule for f in session.scalars(select(FraudFlag))}
