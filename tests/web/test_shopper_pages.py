"""Shopper pages over HTTP (no browser): feed, post with live cards, follow, buy and pay,
orders, inbox, search, live room."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from juxing.content import service as content
from juxing.kit.time import utcnow
from juxing.models.orders import Order
from web.test_shell import csrf_of, sign_in
from web.world import build


def _form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} field"
    return match.group(1)


def test_visitor_sees_feed_post_and_storefront(client, session):
    w = build(session)
    session.commit()
    home = client.get("/")
    assert home.status_code == 200
    assert "Peony Serum" in home.text  # the festival strip
    post = client.get(f"/posts/{w.post_id}")
    assert post.status_code == 200
    assert "<strong>really</strong>" in post.text  # rendered Markdown
    assert "¥99.00" in post.text and "Half price today" in post.text
    assert 'class="button buy-form" href="/signin?next=' in post.text  # visitors sign in to buy
    cards = client.get(f"/posts/{w.post_id}/cards", headers={"HX-Request": "true"})
    assert cards.status_code == 200 and "<html" not in cards.text and "¥99.00" in cards.text
    store = client.get(f"/c/{w.handle}")
    assert store.status_code == 200 and "My honest serum review" in store.text
    assert client.get("/posts/999999").status_code == 404


def test_shopper_follows_buys_pays_and_sees_the_order(client, session):
    w = build(session)
    session.commit()
    assert sign_in(client, w.shopper.email).status_code == 303
    post = client.get(f"/posts/{w.post_id}").text
    token = csrf_of(post)
    r = client.post(
        "/follows",
        data={"csrf_token": token, "target_id": w.creator.id, "next": f"/posts/{w.post_id}"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Following" in client.get(f"/posts/{w.post_id}").text

    assert 'action="/deals/' in post  # the card's buy form
    buy_key = _form_value(post, "buy_key")
    form = {"csrf_token": token, "buy_key": buy_key, "quantity": "1"}
    first = client.post(f"/deals/{w.deal_item_id}/buy", data=form, follow_redirects=False)
    again = client.post(f"/deals/{w.deal_item_id}/buy", data=form, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]  # a double submit buys once
    order_path = first.headers["location"]
    order_id = int(order_path.rsplit("/", 1)[1])
    assert (
        session.scalars(select(Order).where(Order.shopper_id == w.shopper.id)).all().__len__() == 1
    )

    page = client.get(order_path).text
    assert "Pay now" in page
    r = client.post(f"/orders/{order_id}/pay", data={"csrf_token": token}, follow_redirects=False)
    checkout = r.headers["location"]
    assert checkout.startswith("/checkout/")
    assert "¥99.00" in client.get(checkout).text
    r = client.post(
        checkout, data={"csrf_token": token, "outcome": "succeeded"}, follow_redirects=False
    )
    assert r.headers["location"] == order_path
    session.expire_all()
    assert session.get(Order, order_id).status == "paid"
    listing = client.get("/orders").text
    assert f"#{order_id}" in listing and "Paid" in listing

    # Another shopper's order is a 404 page, not a leak.
    other = client.get("/orders/999999")
    assert other.status_code == 404


def test_inbox_shows_a_followed_creators_new_post(client, session):
    w = build(session)
    content.follow(session=session, user=w.shopper, kind="creator", target_id=w.creator.id)
    post = content.create_post(
        session=session,
        user=w.creator,
        data={
            "type": "article",
            "title": "Second look at the serum",
            "body_markdown": "Still good.",
        },
    )
    content.publish_post(session=session, user=w.creator, post_id=post.id)
    session.commit()
    sign_in(client, w.shopper.email)
    inbox = client.get("/inbox").text
    assert f'href="/posts/{post.id}"' in inbox
    assert "1 new" in inbox
    token = csrf_of(inbox)
    client.post("/inbox/read", data={"csrf_token": token})
    assert "1 new" not in client.get("/inbox").text


def test_search_finds_posts_and_rejects_unknown_kind(client, session):
    w = build(session, post_title="Peony serum diary")
    session.commit()
    r = client.get("/search", params={"q": "peony"})
    assert r.status_code == 200
    assert f'href="/posts/{w.post_id}"' in r.text
    assert client.get("/search", params={"q": "peony", "kind": "nope"}).status_code == 422
    assert client.get("/search").status_code == 200


def test_feed_partial_and_live_room_page(client, session):
    w = build(session)
    room = content.create_room(
        session=session,
        user=w.creator,
        data={
            "title": "Serum night",
            "description": "Live Q&A",
            "scheduled_at": utcnow() + timedelta(hours=1),
            "items": [{"product_id": w.product_id, "deal_item_id": w.deal_item_id}],
        },
    )
    session.commit()
    page = client.get(f"/live/{room.id}")
    assert page.status_code == 200
    assert f'data-live-stream="/api/v1/live-rooms/{room.id}/events"' in page.text
    assert "Peony Serum" in page.text
    home = client.get("/")
    cursor = re.search(r'hx-get="/feed/more\?cursor=([^"]+)"', home.text)
    if cursor:  # the feed has more than one page
        more = client.get(f"/feed/more?cursor={cursor.group(1)}")
        assert more.status_code == 200 and "<html" not in more.text
    assert client.get("/feed/more?cursor=bogus").status_code == 400
