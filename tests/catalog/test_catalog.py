"""Catalog: merchants, products with SKUs, image uploads (type and size checked), ownership."""

from __future__ import annotations

import io

from PIL import Image

from factories import make_user_with_auth
from juxing.models.accounts import Role


def _png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_merchant_products_images(client, session, tmp_path):
    client.app.state.settings.data_dir = tmp_path
    _m, mh = make_user_with_auth(session, Role.MERCHANT)
    _o, other = make_user_with_auth(session, Role.MERCHANT)
    _s, sh = make_user_with_auth(session, Role.SHOPPER)
    m = client.post("/api/v1/merchants", headers=mh, json={"name": "Tea Corner"})
    assert m.status_code == 201 and m.json()["tier"] == "new"
    assert client.post("/api/v1/merchants", headers=sh, json={"name": "Nope"}).status_code == 403
    body = {
        "merchant_id": m.json()["id"],
        "title": "Longjing 龙井",
        "skus": [{"name": "100 g", "list_price_minor": 12_800, "stock": 40}],
    }
    assert client.post("/api/v1/products", headers=other, json=body).status_code == 404
    bad = client.post(
        "/api/v1/products",
        headers=mh,
        json={**body, "skus": [{"name": "x", "list_price_minor": -1}]},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "body.skus.0.list_price_minor"
    p = client.post("/api/v1/products", headers=mh, json=body)
    assert p.status_code == 201 and p.json()["skus"][0]["stock"] == 40
    pid = p.json()["id"]
    up = client.post(
        f"/api/v1/products/{pid}/images", headers=mh, files={"file": ("a.png", _png(), "image/png")}
    )
    assert up.status_code == 201, up.text
    assert up.json()["content_type"] == "image/png" and up.json()["width"] == 8
    got = client.get(up.json()["url"])
    assert got.status_code == 200 and got.content == _png()
    fake = client.post(
        f"/api/v1/products/{pid}/images",
        headers=mh,
        files={"file": ("a.png", b"<svg onload=alert(1)>", "image/png")},
    )
    assert fake.status_code == 422 and fake.json()["error"]["code"] == "image_invalid"
    client.app.state.settings.upload_max_bytes = 1024
    big = client.post(
        f"/api/v1/products/{pid}/images",
        headers=mh,
        files={"file": ("b.png", _png((400, 400)) + b"0" * 2048, "image/png")},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "image_too_large"
    assert (
        client.post(
            f"/api/v1/products/{pid}/images",
            headers=other,
            files={"file": ("a.png", _png(), "image/png")},
        ).status_code
        == 404
    )
    patched = client.patch(
        f"/api/v1/skus/{p.json()['skus'][0]['id']}", headers=mh, json={"stock": 10}
    )
    assert patched.json()["stock"] == 10
    listed = client.get("/api/v1/products", params={"merchant_id": m.json()["id"]}).json()
    assert listed["total"] == 1 and len(listed["items"][0]["images"]) == 1
