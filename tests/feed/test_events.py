"""Behaviour-event ingestion: batches, per-event errors, idempotency by client event id."""

from __future__ import annotations

from sqlalchemy import func, select

from factories import make_user_with_auth
from juxing.models.events import BehaviorEvent

URL = "/api/v1/events"


def _count(session, user_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(BehaviorEvent).where(BehaviorEvent.user_id == user_id)
    )


def _event(cid: str, **extra):
    return {
        "client_event_id": cid,
        "action": "view",
        "target_type": "product",
        "target_id": 7,
    } | extra


def test_batch_is_stored_and_retry_adds_nothing(client, session):
    user, auth = make_user_with_auth(session)
    batch = {"events": [_event(f"e{i}", target_id=i + 1) for i in range(5)]}
    first = client.post(URL, json=batch, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 5, "duplicates": 0, "rejected": 0, "errors": []}
    again = client.post(URL, json=batch, headers=auth)
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 5
    assert _count(session, user.id) == 5


def test_invalid_events_are_reported_and_valid_ones_kept(client, session):
    user, auth = make_user_with_auth(session)
    events = [
        _event("ok-1"),
        _event("bad-action", action="teleport"),
        _event("ok-2", action="buy", target_id=9, dwell_ms=1200),
        {"action": "view", "target_type": "post", "target_id": 3},  # no client_event_id
        _event("bad-extra", price_minor=1),
        _event("future", occurred_at="2999-01-01T00:00:00Z"),
        _event("ok-1"),  # repeated inside the batch
    ]
    r = client.post(URL, json={"events": events}, headers=auth)
    assert r.status_code == 207, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    by_index = {e["index"]: e for e in body["errors"]}
    assert set(by_index) == {1, 3, 4, 5}
    assert by_index[1]["errors"][0]["field"] == "body.events.1.action"
    assert by_index[3]["errors"][0]["field"] == "body.events.3.client_event_id"
    assert by_index[4]["errors"][0]["field"] == "body.events.4.price_minor"
    assert by_index[5]["errors"][0]["type"] == "future_timestamp"
    assert _count(session, user.id) == 2


def test_events_are_scoped_to_their_sender(client, session):
    u1, a1 = make_user_with_auth(session)
    u2, a2 = make_user_with_auth(session)
    client.post(URL, json={"events": [_event("same")]}, headers=a1)
    r = client.post(URL, json={"events": [_event("same")]}, headers=a2)
    assert r.json()["accepted"] == 1
    assert _count(session, u1.id) == 1
    assert _count(session, u2.id) == 1


def test_batch_limits_and_auth(client, session):
    _user, auth = make_user_with_auth(session)
    too_many = {"events": [_event(f"e{i}") for i in range(1001)]}
    r = client.post(URL, json=too_many, headers=auth)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.events"
    assert client.post(URL, json={"events": []}, headers=auth).status_code == 422
    assert client.post(URL, json={"events": [_event("x")]}).status_code == 401


def test_a_full_batch_of_1000_is_accepted(client, session):
    user, auth = make_user_with_auth(session)
    batch = {"events": [_event(f"e{i}", target_id=i % 50 + 1) for i in range(1000)]}
    r = client.post(URL, json=batch, headers=auth)
    assert r.json()["accepted"] == 1000
    assert _count(session, user.id) == 1000


def test_follow_signal_becomes_a_follow_event(session):
    from juxing.content.events import Followed
    from juxing.kit.signals import publish

    user, _auth = make_user_with_auth(session)
    publish(session, Followed(follower_id=user.id, target_kind="creator", target_id=42))
    publish(session, Followed(follower_id=user.id, target_kind="creator", target_id=42))
    rows = session.execute(
        select(BehaviorEvent.action, BehaviorEvent.target_type, BehaviorEvent.target_id).where(
            BehaviorEvent.user_id == user.id
        )
    ).all()
    assert rows == [("follow", "creator", 42)]
