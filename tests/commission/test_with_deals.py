"""End to end through the real deals service over HTTP: a creator's link, an anonymous click
(the juxing_vid cookie), an order, payment, receipt, a refund after confirmation."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from factories import make_user_with_auth
from juxing import ledger
from juxing.commission import reconcile, service
from juxing.kit.time import utcnow
from juxing.ledger.service import CREATOR_AVAILABLE, CREATOR_PENDING
from juxing.models.accounts import Role
from juxing.models.commission import Commission


def _deals_world(session):
    spec = importlib.util.spec_from_file_location(
        "deals_world", Path(__file__).parents[1] / "deals" / "conftest.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("deals_world", mod)
    spec.loader.exec_module(mod)
    return mod.build_world(session)


def _pay(client, headers, order_id):
    p = client.post(f"/api/v1/orders/{order_id}/pay", headers=headers)
    assert p.status_code == 201, p.text
    s = client.post(
        f"/api/v1/payments/{p.json()['id']}/simulate",
        json={"outcome": "succeeded", "deliver": "now"},
        headers=headers,
    )
    assert s.status_code == 200, s.text


def test_click_order_pay_receive_refund_through_the_deals_service(client, session):
    w = _deals_world(session)  # deal item at 5,900 with commission_rate_bp=800
    creator, ch = make_user_with_auth(session, Role.CREATOR)
    _shopper, sh = make_user_with_auth(session, Role.SHOPPER)
    link = client.post(
        "/api/v1/commission/links",
        json={"target_type": "deal_item", "target_id": w.deal_item_id},
        headers=ch,
    ).json()
    # The shopper clicks while browsing anonymously; the cookie rides along to the order.
    r = client.get(f"/t/{link['token']}", follow_redirects=False)
    assert r.status_code == 302 and client.cookies.get("juxing_vid")
    order = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "quantity": 2}, headers=sh
    )
    assert order.status_code == 201, order.text
    oid = order.json()["id"]
    (c,) = session.scalars(select(Commission).where(Commission.order_id == oid))
    assert c.creator_id == creator.id and c.rule_scope == "deal_item" and c.base_rate_bp == 800
    _pay(client, sh, oid)
    session.expire_all()
    c = session.get(Commission, c.id)
    assert c.status == "pending" and c.amount_minor == 11_800 and c.base_minor == 944
    bal = lambda k: ledger.balance(session, kind=k, owner_id=creator.id, currency="CNY")  # noqa: E731
    assert bal(CREATOR_PENDING) == 944 - 94
    assert client.post(f"/api/v1/orders/{oid}/ship", headers=w.headers["merchant"]).is_success
    assert client.post(f"/api/v1/orders/{oid}/receive", headers=sh).is_success
    service.mature_due(session, at=utcnow() + timedelta(days=8))
    assert bal(CREATOR_AVAILABLE) == 850
    line_id = order.json()["lines"][0]["id"]
    rf = client.post(
        f"/api/v1/orders/{oid}/refunds",
        json={"lines": [{"order_line_id": line_id, "quantity": 1}], "restock": False},
        headers={**w.headers["merchant"], "Idempotency-Key": "rf-c1"},
    )
    assert rf.status_code == 201, rf.text
    assert bal(CREATOR_AVAILABLE) == 850 - (472 - 47)
    found, _ = reconcile.run_checks(session)
    assert found == []
