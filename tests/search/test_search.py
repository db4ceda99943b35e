"""Full-text search in Chinese and English on the configured database (SQLite FTS5 by default,
PostgreSQL tsvector + GIN with JUXING_TEST_DATABASE_URL): ranking, filters, pagination."""

from __future__ import annotations

from datetime import timedelta

from content_helpers import make_category, make_creator, make_deal_item, make_product
from sqlalchemy import text

from juxing.search import service
from juxing.search.products import index_product, sweep_products
from juxing.search.segment import index_tokens, query_tokens
from juxing.search.service import DocumentKind


def _doc(session, ref_id, title, body="", **kw):
    return service.index_document(
        session=session, kind=kw.pop("kind", DocumentKind.POST), ref_id=ref_id, title=title,
        texts=(body,), **kw,
    )  # fmt: skip


def test_segmentation_makes_chinese_searchable():
    assert "防晒" in index_tokens("夏季防晒霜推荐").split()
    assert "防晒霜" in index_tokens("夏季防晒霜推荐").split()
    assert query_tokens("防晒霜 Sunscreen!") == ["防晒霜", "sunscreen"]


def test_chinese_and_english_queries_rank_and_filter(session):
    _doc(session, 1, "夏季防晒霜推荐", "这款防晒霜清爽不油腻，防晒效果好", price_minor=8900)
    _doc(session, 2, "秋冬保湿面霜", "干皮必备的保湿面霜", price_minor=15900)
    _doc(session, 3, "Best sunscreen for the beach", "A light sunscreen, SPF50", price_minor=5900)
    _doc(session, 4, "Kitchen knives", "Sharp knives for the kitchen", price_minor=29900)
    _doc(session, 5, "防晒衣", "户外防晒必备", price_minor=19900)

    zh = service.search(session=session, query="防晒霜")
    assert [h.id for h in zh.items] == [1]
    broad = service.search(session=session, query="防晒")
    assert {h.id for h in broad.items} == {1, 5}
    # Ranked: of two equally long documents, the one saying "kettle" more often comes first.
    _doc(session, 6, "kettle review", "kettle kettle steel quiet fast")
    _doc(session, 7, "kitchen review", "kettle glass teapot loud slow")
    assert [h.id for h in service.search(session=session, query="kettle").items] == [6, 7]
    en = service.search(session=session, query="Sunscreen")
    assert [h.id for h in en.items] == [3]
    both = service.search(session=session, query="保湿 面霜")
    assert [h.id for h in both.items] == [2]
    assert service.search(session=session, query="不存在的词").total == 0
    # Price filter and pagination.
    priced = service.search(session=session, query="防晒", max_price_minor=10000)
    assert [h.id for h in priced.items] == [1]
    page1 = service.search(session=session, query="防晒", limit=1, offset=0)
    page2 = service.search(session=session, query="防晒", limit=1, offset=1)
    assert page1.total == page2.total == 2
    assert {page1.items[0].id, page2.items[0].id} == {1, 5}
    # Re-indexing replaces; removing removes.
    _doc(session, 1, "冬季手套", "保暖")
    assert service.search(session=session, query="防晒霜").total == 0
    service.remove_document(session=session, kind=DocumentKind.POST, ref_id=5)
    assert service.search(session=session, query="防晒").total == 0


def test_query_syntax_is_not_interpreted(session):
    _doc(session, 10, 'He said "hello" AND NOT goodbye', "x OR y * ( ) : -")
    for q in ['"hello"', "hello AND", "NOT", "x OR y", "*", "(", "goodbye)", "tokens:x", "-"]:
        service.search(session=session, query=q) if any(c.isalnum() for c in q) else None
    assert [h.id for h in service.search(session=session, query='"hello" AND').items] == [10]


def test_products_and_creators_with_category_and_on_deal_filters(session):
    beauty = make_category(session, "Beauty")
    kitchen = make_category(session, "Kitchen")
    spf, spf_sku = make_product(session, category=beauty, title="防晒霜 SPF50 Sunscreen")
    knife, knife_sku = make_product(session, category=kitchen, title="Chef knife 厨师刀")
    later, later_sku = make_product(session, category=beauty, title="防晒喷雾 Sunscreen spray")
    make_deal_item(session, product=spf, sku=spf_sku, deal_price_minor=6900)
    make_deal_item(session, product=later, sku=later_sku, starts_in=timedelta(days=2))
    assert sweep_products(session=session) >= 3
    assert sweep_products(session=session) == 0  # nothing changed
    creator, _h = make_creator(session, handle="sunscreen_fan", level=4)

    found = service.search(session=session, query="sunscreen", kinds=[DocumentKind.PRODUCT])
    assert {h.id for h in found.items} == {spf.id, later.id}
    on_deal = service.search(session=session, query="sunscreen", on_deal_now=True)
    assert [(h.kind, h.id) for h in on_deal.items] == [("product", spf.id)]
    assert on_deal.items[0].price_minor == 6900 and on_deal.items[0].on_deal_now
    cat = service.search(session=session, query="厨师刀", category_id=kitchen.id)
    assert [h.id for h in cat.items] == [knife.id]
    assert service.search(session=session, query="厨师刀", category_id=beauty.id).total == 0
    creators = service.search(session=session, query="sunscreen_fan", kinds=[DocumentKind.CREATOR])
    assert [h.id for h in creators.items] == [creator.id]
    index_product(session=session, product=knife)  # idempotent
    assert knife_sku.id


def test_published_posts_are_searchable_over_http(client, session):
    _c, headers = make_creator(session)
    pid = client.post(
        "/api/v1/posts",
        json={"type": "article", "title": "秋季护肤心得", "body_markdown": "**精华液**真的好用"},
        headers=headers,
    ).json()["id"]
    assert client.get("/api/v1/search", params={"q": "精华液"}).json()["total"] == 0  # draft
    client.post(f"/api/v1/posts/{pid}/publish", headers=headers)
    r = client.get("/api/v1/search", params={"q": "精华液", "kind": "post"})
    assert r.status_code == 200
    assert [(h["kind"], h["id"]) for h in r.json()["items"]] == [("post", pid)]
    client.post(f"/api/v1/posts/{pid}/unpublish", headers=headers)
    assert client.get("/api/v1/search", params={"q": "精华液"}).json()["total"] == 0
    # Bad input is a clear 4xx.
    assert client.get("/api/v1/search", params={"q": ""}).status_code == 422
    r = client.get("/api/v1/search", params={"q": "!!!"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "empty_query"
    r = client.get("/api/v1/search", params={"q": "x" * 201})
    assert r.json()["error"]["details"][0]["field"] == "query.q"
    r = client.get("/api/v1/search", params={"q": "a", "min_price_minor": 10, "max_price_minor": 5})
    assert r.status_code == 400


def test_the_database_has_a_real_full_text_index(session):
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        sql = session.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'search_fts'")
        ).scalar_one()
        assert "fts5" in sql.lower()
    else:
        indexdef = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_documents_tsv'")
        ).scalar_one()
        assert "gin" in indexdef.lower()
        plan = "\n".join(
            session.execute(
                text(
                    "EXPLAIN SELECT id FROM search_documents "
                    "WHERE tsv @@ plainto_tsquery('simple', 'x')"
                )
            ).scalars()
        )
        assert "search_documents" in plan
