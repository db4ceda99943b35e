"""The whole brief lifecycle over HTTP, with escrow on the real ledger."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from juxing.kit.time import utcnow
from juxing.ledger.reconcile import check_ledger
from juxing.marketplace import escrow, service
from juxing.models.ledger import LedgerEntry
from juxing.models.marketplace import Brief, BriefApplication, MarketplaceNotification

API = "/api/v1/marketplace"


def _balances(session, world, creator_id: int) -> tuple[int, int, int]:
    m = world.merchant.id
    return (
        escrow.merchant_balance(session, merchant_id=m, currency="CNY"),
        escrow.escrowed(session, merchant_id=m, currency="CNY"),
        escrow.ledger.balance(
            session, kind=escrow.CREATOR_AVAILABLE, owner_id=creator_id, currency="CNY"
        ),
    )


def _ledger_ok(session) -> None:
    problems, _n = check_ledger(session)
    assert problems == []
    assert session.scalar(select(func.sum(LedgerEntry.amount_minor))) in (0, None)


def _fund(client, world, amount: int, ref: str = "wire-1") -> None:
    r = client.post(
        f"{API}/merchants/{world.merchant.id}/balance/top-ups",
        json={"amount_minor": amount, "reference": ref},
        headers=world.operator_auth,
    )
    assert r.status_code == 200, r.text


def _apply(client, brief_id: int, auth) -> int:
    r = client.post(
        f"{API}/briefs/{brief_id}/applications",
        json={"pitch": "My readers love serums."},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_post_accept_deliver_approve_moves_the_fee_through_escrow(
    client, session, world, new_brief_body, new_post
):
    _fund(client, world, 100_000)
    _fund(client, world, 100_000)  # the same reference again: recorded once
    r = client.post(f"{API}/briefs", json=new_brief_body(world), headers=world.merchant_auth)
    assert r.status_code == 201, r.text
    brief = r.json()
    assert brief["status"] == "open" and brief["merchant_id"] == world.merchant.id

    creator, c_auth = world.creators[0]
    listed = client.get(f"{API}/briefs", headers=c_auth).json()
    assert [b["id"] for b in listed["items"]] == [brief["id"]]
    app_id = _apply(client, brief["id"], c_auth)
    assert (
        client.post(
            f"{API}/briefs/{brief['id']}/applications", json={"pitch": "again"}, headers=c_auth
        ).status_code
        == 409
    )

    assert _balances(session, world, creator.id) == (100_000, 0, 0)
    r = client.post(f"{API}/applications/{app_id}/accept", headers=world.merchant_auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.json()["fee_minor"] == 30_000
    assert _balances(session, world, creator.id) == (70_000, 30_000, 0)
    _ledger_ok(session)
    # Accepting twice does not hold the fee twice.
    assert (
        client.post(f"{API}/applications/{app_id}/accept", headers=world.merchant_auth).status_code
        == 409
    )
    assert _balances(session, world, creator.id) == (70_000, 30_000, 0)

    draft = new_post(session, creator, published=False)
    r = client.post(
        f"{API}/applications/{app_id}/deliver", json={"post_id": draft.id}, headers=c_auth
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "post_not_published"
    video = new_post(session, creator, type_="video")
    r = client.post(
        f"{API}/applications/{app_id}/deliver", json={"post_id": video.id}, headers=c_auth
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_post_type"
    someone_elses = new_post(session, world.creators[1][0])
    r = client.post(
        f"{API}/applications/{app_id}/deliver", json={"post_id": someone_elses.id}, headers=c_auth
    )
    assert r.status_code == 404
    post = new_post(session, creator)
    r = client.post(
        f"{API}/applications/{app_id}/deliver", json={"post_id": post.id}, headers=c_auth
    )
    assert r.status_code == 200 and r.json()["status"] == "delivered"

    r = client.post(f"{API}/applications/{app_id}/approve", headers=world.merchant_auth)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert _balances(session, world, creator.id) == (70_000, 0, 30_000)
    _ledger_ok(session)

    kinds_merchant = [
        n["kind"]
        for n in client.get(f"{API}/notifications", headers=world.merchant_auth).json()["items"]
    ]
    kinds_creator = [
        n["kind"] for n in client.get(f"{API}/notifications", headers=c_auth).json()["items"]
    ]
    assert kinds_merchant == ["delivered", "application_received"]
    assert kinds_creator == ["approved", "application_accepted"]


def test_dispute_is_decided_by_an_operator_either_way(
    client, session, world, new_brief_body, new_post
):
    _fund(client, world, 60_000)
    brief = client.post(
        f"{API}/briefs", json=new_brief_body(world), headers=world.merchant_auth
    ).json()
    ids = []
    for creator, auth in world.creators[:2]:
        app_id = _apply(client, brief["id"], auth)
        assert (
            client.post(
                f"{API}/applications/{app_id}/accept", headers=world.merchant_auth
            ).status_code
            == 200
        )
        post = new_post(session, creator)
        assert (
            client.post(
                f"{API}/applications/{app_id}/deliver", json={"post_id": post.id}, headers=auth
            ).status_code
            == 200
        )
        r = client.post(
            f"{API}/applications/{app_id}/dispute",
            json={"reason": "No product shown"},
            headers=world.merchant_auth,
        )
        assert r.status_code == 200 and r.json()["status"] == "disputed"
        ids.append(app_id)
    # The budget (60,000) holds exactly two fees: a third acceptance is refused.
    third = _apply(client, brief["id"], world.creators[2][1])
    r = client.post(f"{API}/applications/{third}/accept", headers=world.merchant_auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "budget_exhausted"

    # Only an operator decides.
    r = client.post(
        f"{API}/applications/{ids[0]}/resolve",
        json={"in_favour_of": "merchant"},
        headers=world.merchant_auth,
    )
    assert r.status_code == 403
    r = client.post(
        f"{API}/applications/{ids[0]}/resolve",
        json={"in_favour_of": "merchant", "note": "not delivered"},
        headers=world.operator_auth,
    )
    assert r.status_code == 200 and r.json()["resolution"] == "merchant"
    r = client.post(
        f"{API}/applications/{ids[1]}/resolve",
        json={"in_favour_of": "creator"},
        headers=world.operator_auth,
    )
    assert r.status_code == 200
    assert (
        client.post(
            f"{API}/applications/{ids[1]}/resolve",
            json={"in_favour_of": "merchant"},
            headers=world.operator_auth,
        ).status_code
        == 409
    )
    m, held, _ = _balances(session, world, world.creators[0][0].id)
    assert (m, held) == (30_000, 0)
    assert _balances(session, world, world.creators[0][0].id)[2] == 0
    assert _balances(session, world, world.creators[1][0].id)[2] == 30_000
    # The returned fee frees budget again.
    assert session.get(Brief, brief["id"]).committed_minor == 30_000
    _ledger_ok(session)


def test_deadline_expiry_returns_the_escrow_and_auto_approves_late_reviews(
    client, session, world, new_brief_body, new_post
):
    _fund(client, world, 100_000)
    brief = client.post(
        f"{API}/briefs",
        json=new_brief_body(world, budget_minor=90_000),
        headers=world.merchant_auth,
    ).json()
    (c0, a0), (c1, a1), (_c2, a2) = world.creators
    undelivered = _apply(client, brief["id"], a0)
    delivered = _apply(client, brief["id"], a1)
    pending = _apply(client, brief["id"], a2)
    for app_id in (undelivered, delivered):
        assert (
            client.post(
                f"{API}/applications/{app_id}/accept", headers=world.merchant_auth
            ).status_code
            == 200
        )
    post = new_post(session, c1)
    assert (
        client.post(
            f"{API}/applications/{delivered}/deliver", json={"post_id": post.id}, headers=a1
        ).status_code
        == 200
    )
    assert _balances(session, world, c0.id)[:2] == (40_000, 60_000)

    after_deadline = utcnow() + timedelta(days=8)
    counts = service.expire_overdue(session=session, now=after_deadline)
    assert counts == {"briefs_closed": 1, "expired": 2, "auto_approved": 0}
    statuses = dict(session.execute(select(BriefApplication.id, BriefApplication.status)).all())
    assert statuses[undelivered] == "expired" and statuses[pending] == "expired"
    assert statuses[delivered] == "delivered"
    assert _balances(session, world, c0.id)[:2] == (70_000, 30_000)
    # Running again changes nothing (idempotent sweep).
    assert service.expire_overdue(session=session, now=after_deadline)["expired"] == 0

    counts = service.expire_overdue(session=session, now=after_deadline + service.REVIEW_WINDOW)
    assert counts["auto_approved"] == 1
    assert _balances(session, world, c1.id) == (70_000, 0, 30_000)
    assert (
        session.scalar(select(func.count()).where(MarketplaceNotification.kind == "expired")) == 3
    )  # undelivered: creator + merchant; pending: creator
    _ledger_ok(session)


def test_insufficient_balance_refuses_acceptance_and_changes_nothing(
    client, session, world, new_brief_body, new_post
):
    _fund(client, world, 10_000)
    brief = client.post(
        f"{API}/briefs", json=new_brief_body(world), headers=world.merchant_auth
    ).json()
    app_id = _apply(client, brief["id"], world.creators[0][1])
    r = client.post(f"{API}/applications/{app_id}/accept", headers=world.merchant_auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_balance"
    assert (
        client.get(f"{API}/applications/{app_id}", headers=world.merchant_auth).json()["status"]
        == "applied"
    )
    assert (
        client.get(f"{API}/briefs/{brief['id']}", headers=world.merchant_auth).json()[
            "committed_minor"
        ]
        == 0
    )


def test_roles_ownership_and_strict_bodies(client, session, world, new_brief_body, new_post):
    body = new_brief_body(world)
    c_auth = world.creators[0][1]
    assert client.post(f"{API}/briefs", json=body, headers=c_auth).status_code == 403
    r = client.post(f"{API}/briefs", json={**body, "status": "closed"}, headers=world.merchant_auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.status"
    # Another merchant may not post a brief for our products, nor see our applications.
    r = client.post(f"{API}/briefs", json=body, headers=world.other_merchant_auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_items"
    r = client.post(
        f"{API}/briefs",
        json={**body, "deadline": "2001-01-01T00:00:00Z"},
        headers=world.merchant_auth,
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.deadline"
    brief = client.post(f"{API}/briefs", json=body, headers=world.merchant_auth).json()
    app_id = _apply(client, brief["id"], c_auth)
    assert (
        client.post(
            f"{API}/applications/{app_id}/accept", headers=world.other_merchant_auth
        ).status_code
        == 404
    )
    assert (
        client.get(f"{API}/applications/{app_id}", headers=world.other_merchant_auth).status_code
        == 404
    )
    assert (
        client.get(f"{API}/applications/{app_id}", headers=world.creators[1][1]).status_code == 404
    )
    assert (
        client.get(
            f"{API}/merchants/{world.merchant.id}/balance", headers=world.other_merchant_auth
        ).status_code
        == 404
    )
    assert (
        client.post(f"{API}/applications/{app_id}/approve", headers=world.merchant_auth).status_code
        == 409
    )
    # Closing declines pending applications and tells the creator.
    r = client.post(f"{API}/briefs/{brief['id']}/close", headers=world.merchant_auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.get(f"{API}/applications/{app_id}", headers=c_auth).json()["status"] == "declined"
