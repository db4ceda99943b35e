"""Live rooms over the real protocol: uvicorn serving server-sent events, httpx clients
streaming them. Pin changes, go-live and stock/viewer ticks arrive without reloading; with
Redis, a pin posted to one API process reaches viewers connected to another."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from content_helpers import make_creator, make_deal_item, make_product

from juxing.app import create_app


def _room(db):
    with db.session() as session:
        _creator, headers = make_creator(session)
        product, sku = make_product(session, title="直播专享 电动牙刷")
        deal = make_deal_item(session, product=product, sku=sku, stock=7)
        other, other_sku = make_product(session, title="Travel case")
        session.flush()
        items = [
            {"product_id": product.id, "deal_item_id": deal.id, "live_only": True, "note": "秒杀"},
            {"product_id": other.id, "sku_id": other_sku.id},
        ]
    return headers, items


async def _events(client: httpx.AsyncClient, url: str, want: int, out: list, ready: asyncio.Event):
    """Read ``want`` events after the snapshot into ``out``; set ``ready`` after the snapshot."""
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if event:
                    if event.get("event") == "snapshot":
                        ready.set()
                    out.append((event.get("event"), json.loads(event["data"])))
                    event = {}
                    if len(out) > want:
                        return
                continue
            key, _, value = line.partition(": ")
            event[key] = value


async def _watch_and_act(base_view: str, base_act: str, headers, room_id, item_id, viewers=3):
    outs: list[list] = [[] for _ in range(viewers)]
    readies = [asyncio.Event() for _ in range(viewers)]
    async with (
        httpx.AsyncClient(base_url=base_view, timeout=20) as view,
        httpx.AsyncClient(base_url=base_act, timeout=20, headers=headers) as act,
    ):
        url = f"/api/v1/live-rooms/{room_id}/events"
        tasks = [
            asyncio.create_task(_events(view, url, 3, outs[i], readies[i])) for i in range(viewers)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 15)
        r = await act.post(f"/api/v1/live-rooms/{room_id}/start")
        assert r.status_code == 200, r.text
        r = await act.post(f"/api/v1/live-rooms/{room_id}/pin", json={"item_id": item_id})
        assert r.status_code == 200, r.text
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    return outs


def test_viewers_receive_go_live_pin_and_ticks_over_sse(committed_db, settings, live_server):
    headers, items = _room(committed_db)
    base = live_server(create_app(settings, db=committed_db))
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        r = http.post(
            "/api/v1/live-rooms",
            json={"title": "双11直播", "scheduled_at": "2030-11-11T12:00:00+00:00", "items": items},
        )
        assert r.status_code == 201, r.text
        room = r.json()
    item_id = room["items"][0]["id"]
    assert room["items"][0]["live_only"] is True and room["items"][0]["stock_left"] == 7

    outs = asyncio.run(_watch_and_act(base, base, headers, room["id"], item_id))
    for out in outs:
        kinds = [k for k, _ in out]
        assert kinds[0] == "snapshot" and out[0][1]["status"] == "scheduled"
        assert kinds[1:3] == ["status", "pin"], kinds
        assert out[1][1]["status"] == "live"
        pin = out[2][1]
        assert pin["pinned_item_id"] == item_id
        assert pin["pinned"]["title"].startswith("直播专享") and pin["pinned"]["stock_left"] == 7
        assert pin["revision"] > out[0][1]["revision"]
        tick = out[3]
        assert tick[0] == "tick" and tick[1]["viewers"] >= 1
        assert next(i["stock_left"] for i in tick[1]["items"]) == 7


def test_unknown_room_stream_is_404(client):
    r = client.get("/api/v1/live-rooms/999999/events")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_only_the_owner_pins(client, session):
    _c, headers = make_creator(session)
    _o, other = make_creator(session)
    room = client.post(
        "/api/v1/live-rooms",
        json={"title": "x", "scheduled_at": "2030-01-01T00:00:00Z"},
        headers=headers,
    ).json()
    assert (
        client.post(
            f"/api/v1/live-rooms/{room['id']}/pin", json={"item_id": None}, headers=other
        ).status_code
        == 404
    )
    r = client.post(
        f"/api/v1/live-rooms/{room['id']}/pin", json={"item_id": 424242}, headers=headers
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.item_id"
    r = client.post(
        "/api/v1/live-rooms", json={"title": "x", "scheduled_at": "2030-01-01T00:00:00"},
        headers=headers,
    )  # fmt: skip
    assert r.status_code == 422  # no time zone


@pytest.mark.redis
def test_pin_reaches_viewers_of_another_process_through_redis(
    committed_db, settings, live_server, redis_url
):
    assert settings.redis_url == redis_url
    headers, items = _room(committed_db)
    base_a = live_server(create_app(settings, db=committed_db))
    base_b = live_server(create_app(settings, db=committed_db))
    with httpx.Client(base_url=base_b, headers=headers, timeout=10) as http:
        room = http.post(
            "/api/v1/live-rooms",
            json={
                "title": "两台服务器",
                "scheduled_at": "2030-11-11T12:00:00+00:00",
                "items": items,
            },
        ).json()
    item_id = room["items"][1]["id"]
    outs = asyncio.run(_watch_and_act(base_a, base_b, headers, room["id"], item_id, viewers=2))
    for out in outs:
        assert [k for k, _ in out][1:3] == ["status", "pin"]
        assert out[2][1]["pinned_item_id"] == item_id
