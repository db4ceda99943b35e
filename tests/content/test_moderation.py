"""Moderation routing (banned words, link spam, cards not on sale, contradicted absolute
claims), the operator queue, the audit log, and what the author sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from content_helpers import make_creator, make_deal_item, make_product

from factories import make_user_with_auth
from juxing.content import moderation
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.content import PriceObservation


def _publish(client, headers, **body):
    r = client.post("/api/v1/posts", json={"type": "article", **body}, headers=headers)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = client.post(f"/api/v1/posts/{pid}/publish", headers=headers)
    assert r.status_code == 200, r.text
    return pid, r.json()


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"title": "正品保证", "body_markdown": "需要的私聊，加微信下单"}, "banned_words"),
        ({"title": "Great deal", "body_markdown": "Totally not COUNTERFEIT"}, "banned_words"),
        (
            {
                "title": "links",
                "body_markdown": " ".join(f"https://a{i}.example" for i in range(6)),
            },
            "link_spam",
        ),
        ({"title": "short", "body_markdown": "see https://bit.ly/xyz"}, "link_spam"),
        ({"title": "全网最低价！", "body_markdown": "冲"}, "absolute_claim"),
    ],
)
def test_failing_posts_wait_in_the_queue(client, session, body, check):
    _c, headers = make_creator(session)
    pid, result = _publish(client, headers, **body)
    assert result["post"]["status"] == "pending_review"
    assert check in {f["check"] for f in result["findings"]}
    assert client.get(f"/api/v1/posts/{pid}").status_code == 404


def test_clean_post_goes_live_and_is_audited(client, session):
    _c, headers = make_creator(session)
    _op, op_headers = make_user_with_auth(session, Role.OPERATOR)
    pid, result = _publish(client, headers, title="夏日防晒指南", body_markdown="SPF50 够用了")
    assert result["post"]["status"] == "published"
    audit = client.get(f"/api/v1/moderation/audit?post_id={pid}", headers=op_headers).json()
    assert [e["action"] for e in audit["items"]] == ["auto_pass"]
    assert audit["items"][0]["actor_id"] is None


def test_card_not_on_sale_and_contradicted_lowest_price_claim(client, session):
    _c, headers = make_creator(session)
    product, sku = make_product(session)
    ended = make_deal_item(
        session, product=product, sku=sku, starts_in=timedelta(days=-2), lasts=timedelta(days=1)
    )
    _pid, result = _publish(
        client, headers, title="Still a steal",
        cards=[{"product_id": product.id, "deal_item_id": ended.id}],
    )  # fmt: skip
    assert result["post"]["status"] == "pending_review"
    assert {f["check"] for f in result["findings"]} == {"card_not_on_sale"}

    # "Lowest price ever" while the history saw it cheaper → flagged with the numbers.
    live_product, live_sku = make_product(session, title="Kettle 电水壶", list_price_minor=30000)
    live = make_deal_item(session, product=live_product, sku=live_sku, deal_price_minor=19900)
    session.add(
        PriceObservation(
            product_id=live_product.id,
            price_minor=15900,
            currency="CNY",
            observed_at=utcnow() - timedelta(days=30),
        )
    )
    session.flush()
    card = [{"product_id": live_product.id, "deal_item_id": live.id}]
    _pid, result = _publish(client, headers, title="史上最低价 lowest price ever", cards=card)
    finding = next(f for f in result["findings"] if f["check"] == "absolute_claim")
    assert finding["detail"]["products"] == [
        {"product_id": live_product.id, "current_price_minor": 19900, "lowest_seen_minor": 15900}
    ]

    # The same claim is fine when the current price is the lowest seen.
    true_product, true_sku = make_product(session, title="Blender", list_price_minor=50000)
    true_deal = make_deal_item(session, product=true_product, sku=true_sku, deal_price_minor=9900)
    session.add(
        PriceObservation(
            product_id=true_product.id,
            price_minor=29900,
            currency="CNY",
            observed_at=utcnow() - timedelta(days=30),
        )
    )
    session.flush()
    _pid, result = _publish(
        client, headers, title="全网最低价",
        cards=[{"product_id": true_product.id, "deal_item_id": true_deal.id}],
    )  # fmt: skip
    assert result["post"]["status"] == "published", result["findings"]


def test_operator_queue_approve_and_reject_with_reason_visible_to_author(client, session):
    _c, headers = make_creator(session)
    _op, op_headers = make_user_with_auth(session, Role.OPERATOR)
    first, _ = _publish(client, headers, title="a", body_markdown="casino night")
    second, _ = _publish(client, headers, title="b", body_markdown="gambling tips")
    # Authors cannot reach the queue.
    assert client.get("/api/v1/moderation/cases", headers=headers).status_code == 403
    queue = client.get("/api/v1/moderation/cases", headers=op_headers).json()
    cases = {c["post_id"]: c for c in queue["items"]}
    assert set(cases) >= {first, second}
    r = client.post(
        f"/api/v1/moderation/cases/{cases[first]['id']}/approve",
        json={"reason": "casino is a place name here"},
        headers=op_headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert client.get(f"/api/v1/posts/{first}").status_code == 200
    r = client.post(
        f"/api/v1/moderation/cases/{cases[second]['id']}/reject", json={}, headers=op_headers
    )
    assert r.status_code == 422  # a rejection needs a reason
    r = client.post(
        f"/api/v1/moderation/cases/{cases[second]['id']}/reject",
        json={"reason": "Gambling content is not allowed."},
        headers=op_headers,
    )
    assert r.status_code == 200
    # Deciding twice is refused.
    again = client.post(
        f"/api/v1/moderation/cases/{cases[second]['id']}/approve", json={}, headers=op_headers
    )
    assert again.status_code == 409
    # The author sees the reason on the post, in the decisions and in the inbox.
    mine = client.get(f"/api/v1/posts/{second}", headers=headers).json()
    assert mine["status"] == "rejected"
    assert mine["moderation_note"] == "Gambling content is not allowed."
    decisions = client.get(f"/api/v1/posts/{second}/moderation", headers=headers).json()
    assert [d["action"] for d in decisions] == ["auto_flag", "reject"]
    assert decisions[1]["reason"] == "Gambling content is not allowed."
    inbox = client.get("/api/v1/inbox", headers=headers).json()
    assert any(i["kind"] == "moderation" and "not allowed" in i["message"] for i in inbox["items"])
    # Every decision is in the audit log.
    log = client.get("/api/v1/moderation/audit", headers=op_headers).json()["items"]
    actions = [(e["post_id"], e["action"]) for e in log if e["post_id"] in {first, second}]
    assert sorted(actions) == sorted(
        [(first, "auto_flag"), (first, "approve"), (second, "auto_flag"), (second, "reject")]
    )


def test_operators_extend_the_banned_list(client, session):
    _c, headers = make_creator(session)
    _op, op_headers = make_user_with_auth(session, Role.OPERATOR)
    r = client.post("/api/v1/moderation/banned-terms", json={"term": "水货"}, headers=op_headers)
    assert r.status_code == 201
    assert (
        client.post(
            "/api/v1/moderation/banned-terms", json={"term": "x"}, headers=headers
        ).status_code
        == 403
    )
    _pid, result = _publish(client, headers, title="便宜水货")
    assert result["findings"][0]["detail"]["terms"] == ["水货"]


def test_edit_of_a_public_post_is_checked_again(client, session):
    _c, headers = make_creator(session)
    pid, result = _publish(client, headers, title="ok")
    assert result["post"]["status"] == "published"
    r = client.patch(f"/api/v1/posts/{pid}", json={"body_markdown": "刷单 返现"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "pending_review"
    assert client.get(f"/api/v1/posts/{pid}").status_code == 404


def test_check_functions_are_pure():
    assert moderation.check_link_spam("https://a.example https://a.example") == []
    assert moderation.check_absolute_claims("nothing to see", [], {}) == []
    facts = [moderation.CardFacts(product_id=1, status="live", current_price_minor=100)]
    assert moderation.check_absolute_claims("lowest price ever", facts, {1: 100}) == []
    assert moderation.check_absolute_claims("lowest price ever", facts, {1: 99})
    assert "赌博" in moderation.shipped_banned_terms()
