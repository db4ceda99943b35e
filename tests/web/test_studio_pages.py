"""Creator studio pages over HTTP (no browser): editor, preview, picker, publish, links,
earnings, live rooms, briefs; other creators' posts stay private."""

from __future__ import annotations

import re
from datetime import timedelta

from factories import make_user
from juxing.kit.time import utcnow
from juxing.marketplace import service as marketplace
from juxing.models.accounts import Role
from juxing.models.commission import TrackingLink
from juxing.models.content import LiveRoom, Post
from web.test_shell import csrf_of, sign_in
from web.world import build, make_creator


def test_studio_pages_render_for_a_creator(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.creator.email)
    for path in (
        "/studio",
        "/studio/posts",
        "/studio/posts/new",
        "/studio/links",
        "/studio/earnings",
        "/studio/live",
        "/studio/briefs",
        f"/studio/posts/{w.post_id}",
    ):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
    editor = client.get("/studio/posts/new").text
    assert f'value="{w.product_id}:{w.deal_item_id}"' in editor  # the card picker offers the deal


def test_write_preview_pick_and_publish(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.creator.email)
    token = csrf_of(client.get("/studio/posts/new").text)
    preview = client.post(
        "/studio/preview",
        data={"body_markdown": "**bold** <script>alert(1)</script>"},
        headers={"X-CSRF-Token": token},
    )
    assert "<strong>bold</strong>" in preview.text and "<script>" not in preview.text
    picked = client.get("/studio/picker", params={"q": "Peony"}).text
    assert f'value="{w.product_id}:{w.deal_item_id}"' in picked
    r = client.post(
        "/studio/posts",
        data={
            "csrf_token": token,
            "title": "Winter serums",
            "body_markdown": "Light and calm.",
            "card": f"{w.product_id}:{w.deal_item_id}",
            f"note:{w.product_id}:{w.deal_item_id}": "My pick",
            "action": "publish",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    post_id = int(r.headers["location"].rsplit("/", 1)[1])
    session.expire_all()
    post = session.get(Post, post_id)
    assert post is not None and post.status in {"published", "pending_review"}
    page = client.get(f"/posts/{post_id}" if post.status == "published" else r.headers["location"])
    assert page.status_code == 200
    # A card value that is not from the picker is refused with the field named.
    bad = client.post(
        "/studio/posts",
        data={"csrf_token": token, "title": "x", "card": "abc"},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "cards" in bad.text


def test_tracking_link_is_made_once_and_counts_clicks(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.creator.email)
    token = csrf_of(client.get("/studio/links").text)
    for _ in range(2):
        client.post(
            "/studio/links",
            data={"csrf_token": token, "target_type": "post", "target_id": w.post_id},
        )
    session.expire_all()
    link_rows = session.query(TrackingLink).filter_by(creator_id=w.creator.id).all()
    assert len(link_rows) == 1
    url = re.search(r'value="(http[^"]+/t/[^"]+)"', client.get("/studio/links").text).group(1)
    landing = client.get("/t/" + url.split("/t/", 1)[1], follow_redirects=False)
    assert landing.headers["location"] == f"/posts/{w.post_id}"
    assert re.search(r'class="num clicks">1<', client.get("/studio/links").text)


def test_another_creators_draft_is_not_editable(client, session):
    w = build(session)
    other = make_creator(session, w.operator, name="Other", handle="other_creator_x")
    session.commit()
    sign_in(client, other.email)
    assert client.get(f"/studio/posts/{w.post_id}").status_code == 404
    token = csrf_of(client.get("/studio").text)
    r = client.post(
        f"/studio/posts/{w.post_id}",
        data={"csrf_token": token, "title": "hijack"},
        follow_redirects=False,
    )
    assert r.status_code == 404
    # A shopper is not a creator.
    shopper = make_user(session, Role.SHOPPER)
    session.commit()
    client.cookies.clear()
    sign_in(client, shopper.email)
    assert client.get("/studio").status_code == 403


def test_schedule_start_and_pin_a_live_room(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.creator.email)
    token = csrf_of(client.get("/studio/live").text)
    start = (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    client.post(
        "/studio/live",
        data={
            "csrf_token": token,
            "title": "Serum night",
            "scheduled_at": start,
            "card": f"{w.product_id}:{w.deal_item_id}",
        },
    )
    session.expire_all()
    room = session.query(LiveRoom).filter_by(creator_id=w.creator.id).one()
    client.post(f"/studio/live/{room.id}/start", data={"csrf_token": token})
    page = client.get("/studio/live").text
    item_id = int(re.search(r'name="item_id" value="(\d+)"', page).group(1))
    client.post(f"/studio/live/{room.id}/pin", data={"csrf_token": token, "item_id": item_id})
    session.expire_all()
    room = session.get(LiveRoom, room.id)
    assert room.status == "live" and room.pinned_item_id == item_id


def test_apply_to_a_brief(client, session):
    w = build(session)
    merchant_id = w.merchant_id
    brief = marketplace.create_brief(
        session=session,
        user=w.merchant,
        merchant_id=merchant_id,
        title="Review our peony serum",
        description="One honest post.",
        deliverable="post",
        post_type=None,
        commission_rate_bp=1200,
        fixed_fee_minor=0,
        budget_minor=0,
        currency="CNY",
        deadline=utcnow() + timedelta(days=5),
        wanted_segments=[],
        items=[marketplace.ItemSpec(product_id=w.product_id)],
    )
    session.commit()
    sign_in(client, w.creator.email)
    page = client.get("/studio/briefs").text
    assert "Review our peony serum" in page
    client.post(
        f"/studio/briefs/{brief.id}/apply",
        data={"csrf_token": csrf_of(page), "pitch": "I wrote about peony before."},
    )
    assert "Applied" in client.get("/studio/briefs").text


def test_a_creator_without_a_profile_applies_from_the_studio(client, session):
    user = make_user(session, Role.CREATOR, Role.SHOPPER)
    session.commit()
    sign_in(client, user.email)
    page = client.get("/studio")
    assert page.status_code == 200 and 'action="/studio/apply"' in page.text
    r = client.post(
        "/studio/apply",
        data={"csrf_token": csrf_of(page.text), "handle": "fresh_voice", "bio": "Hi"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "waiting for an operator" in client.get("/studio").text
    bad = client.post(
        "/studio/apply", data={"csrf_token": csrf_of(page.text), "handle": "no spaces"}
    )
    assert bad.status_code == 422
