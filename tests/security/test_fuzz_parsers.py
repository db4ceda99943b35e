"""Hypothesis fuzzing of the importers and parsers that read outside input.

- the UserBehavior CSV importer (``juxing.feed.importer``) and the recsys readers
  (``juxing.recsys.io``: S3-Rec seq files, UserBehavior CSV): any bytes end in rows or in
  a reported bad line, never in an exception; what is accepted is what the line says;
- Markdown (``juxing.content.markdown``): whatever the source, the HTML has no script,
  style, iframe or event-handler attribute and no link or image outside http(s)/mailto;
- tracking tokens (``juxing.commission.links``): forged, altered or truncated tokens never
  verify; signatures are bound to the code, the creator and the target.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from juxing.content.markdown import plain_text, render_markdown
from juxing.feed import importer
from juxing.recsys import io as recsys_io

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- CSV / seq files ---------------------------------------------------------------------

FIELD = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["pv", "cart", "fav", "buy", "PV", "", " ", "1e3", "0x10", "١٢٣", "+5"]),
    st.text(max_size=12),
)
CSV_LINE = st.one_of(
    st.lists(FIELD, min_size=0, max_size=7).map(lambda xs: ",".join(xs).encode("utf-8", "replace")),
    st.binary(max_size=60),
)


@FUZZ
@given(raw=CSV_LINE)
@example(raw=b"1,2,3,pv,1511544070")
@example(raw=b"\xff\xfe,1,2,pv,3")
@example(raw=b"9223372036854775808,1,1,pv,1511544070")
def test_userbehavior_line_parses_or_says_why(raw: bytes) -> None:
    parsed = importer.parse_line(raw)
    if isinstance(parsed, str):
        assert parsed  # a reason a person can read
        return
    user, item, cat, action, ts = parsed
    fields = [p.strip() for p in raw.decode("utf-8").strip().split(",")]
    assert (int(fields[0]), int(fields[1]), int(fields[2]), int(fields[4])) == (user, item, cat, ts)
    assert action == importer.BEHAVIOR_ACTION[fields[3]]
    assert 0 < user < 2**63 and 0 < item < 2**63 and importer.MIN_TS <= ts < importer.MAX_TS


@FUZZ
@given(lines=st.lists(CSV_LINE, max_size=25))
def test_recsys_userbehavior_reader_never_crashes(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "ub.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    data, bad = recsys_io.read_userbehavior(path, block_lines=7)
    good = [x for x in lines if x.strip() and not isinstance(importer.parse_line(x), str)]
    assert data.indptr[-1] <= len(good)
    assert all(b.line >= 1 and b.reason for b in bad)


SEQ_LINE = st.one_of(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6),
        max_size=6,
    ).map(lambda xs: " ".join(xs).encode()),
    st.binary(max_size=40),
)


@FUZZ
@given(lines=st.lists(SEQ_LINE, max_size=20))
@example(lines=[b"u1 a b c", b"u1 d", b"u2", b"\xff\xfe", b"u3 a\x00b c"])
def test_recsys_seq_reader_never_crashes(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "seq.txt"
    path.write_bytes(b"\n".join(lines))
    data, bad = recsys_io.read_seq(path)
    assert len(data.user_ids) == len(set(data.user_ids.tolist()))  # each user once
    assert data.indptr[-1] == len(data.items) and data.n_items == len(data.item_ids)
    assert all(b.line >= 1 and b.reason for b in bad)


# --- Markdown ------------------------------------------------------------------------------

NASTY = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "![x](data:text/html;base64,PHNjcmlwdD4=)",
    "<a href='javascript:alert(1)'>x</a>",
    "<iframe src=//evil></iframe>",
    "<style>body{}</style>",
    '<svg onload="alert(1)">',
    "[x](vbscript:msgbox)",
    "<div onclick=alert(1)>x</div>",
    "&lt;script&gt;",
    "[x]( javascript:alert(1) )",
    "<details open ontoggle=alert(1)>",
    "`<script>`",
    "[a](<javascript:alert(1)>)",
    "[a]: javascript:alert(1)\n\n[a]",
    "<<script>script>alert(1)<</script>/script>",
]
MD = st.lists(
    st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(["# ", "* ", "> ", "```\n", "|a|b|\n|-|-|\n", "**", "_", "\n\n", "["]),
        st.text(max_size=30),
    ),
    max_size=12,
).map("".join)

TAG = re.compile(r"<\s*([a-zA-Z0-9]+)([^>]*)>")
URL_ATTR = re.compile(r"""\b(href|src)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
SAFE_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th",
    "td",
}  # fmt: skip


def _assert_safe(html_out: str) -> None:
    for tag, attrs in TAG.findall(html_out):
        assert tag.lower() in SAFE_TAGS, (tag, html_out)
        assert not re.search(r"\bon[a-z]+\s*=", attrs, re.I), (attrs, html_out)
        assert "style" not in attrs.lower(), (attrs, html_out)
        # Only real tags carry URLs; escaped text (``&lt;a href=...&gt;``) is inert.
        for m in URL_ATTR.finditer(attrs):
            url = html.unescape(m.group(3) or m.group(4) or m.group(5) or "").strip().lower()
            url = re.sub(r"[\x00-\x20]", "", url)
            scheme = re.match(r"^([a-z][a-z0-9+.\-]*):", url)
            assert scheme is None or scheme.group(1) in ("http", "https", "mailto"), (url, html_out)


@FUZZ
@given(source=MD, nasty=st.sampled_from(NASTY))
def test_markdown_output_is_always_safe(source: str, nasty: str) -> None:
    out = render_markdown(source)
    _assert_safe(out)
    _assert_safe(render_markdown(nasty + source + nasty))
    plain_text(source)  # the snippet text never fails (it is escaped where it is shown)


@pytest.mark.parametrize("nasty", NASTY)
def test_each_known_xss_payload_is_inert(nasty: str) -> None:
    out = render_markdown(nasty)
    _assert_safe(out)
    assert "<script" not in out.lower()
    assert not re.search(r"<[a-z]+[^>]*javascript:", out, re.I), out


# --- tracking tokens -------------------------------------------------------------------------

SECRET = "fuzz-secret-0123456789-abcdefghijklmnopqrstuv"


@pytest.fixture
def link(session):  # type: ignore[no-untyped-def]
    from factories import make_user
    from juxing.commission import links
    from juxing.models.accounts import Role
    from juxing.models.catalog import Merchant, Product

    creator = make_user(session, Role.CREATOR)
    owner = make_user(session, Role.MERCHANT)
    shop = Merchant(owner_id=owner.id, name=f"Fuzz shop {owner.id}")
    session.add(shop)
    session.flush()
    product = Product(merchant_id=shop.id, title="Fuzz lamp")
    session.add(product)
    session.flush()
    return links.link_for(
        session,
        secret_key=SECRET,
        creator_id=creator.id,
        target_type="product",
        target_id=product.id,
    )


TOKEN_CHARS = st.characters(min_codepoint=32, max_codepoint=0x2FF)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_forged_tokens_never_verify(session, link, data) -> None:  # type: ignore[no-untyped-def]
    from juxing.commission import links
    from juxing.kit.errors import NotFound

    real = links.token_of(link)
    assert links.verify_token(session, secret_key=SECRET, token=real).id == link.id
    kind = data.draw(st.sampled_from(["random", "flip", "truncate", "other_secret", "swap_code"]))
    if kind == "random":
        forged = data.draw(st.text(TOKEN_CHARS, max_size=40))
    elif kind == "flip":
        i = data.draw(st.integers(0, len(real) - 1))
        ch = data.draw(st.sampled_from("0123456789abcdefABCDEFxyz."))
        forged = real[:i] + ch + real[i + 1 :]
    elif kind == "truncate":
        forged = real[: data.draw(st.integers(0, len(real) - 1))]
    elif kind == "other_secret":
        sig = links._signature(
            "another-secret-0123456789-abcdefghijklmnop",
            code=link.code,
            creator_id=link.creator_id,
            target_key=link.target_key,
        )
        forged = f"{link.code}.{sig}"
    else:  # the right signature for another creator or another target
        who = data.draw(st.integers(1, 10**9))
        assume(who != link.creator_id)
        sig = links._signature(SECRET, code=link.code, creator_id=who, target_key=link.target_key)
        forged = f"{link.code}.{sig}"
    assume(forged != real)
    with pytest.raises(NotFound):
        links.verify_token(session, secret_key=SECRET, token=forged)


def test_forged_tokens_over_http_are_404_not_5xx(client, session, link) -> None:  # type: ignore[no-untyped-def]
    from juxing.commission import links

    real = links.token_of(link)
    for forged in [real[:-1] + ("0" if real[-1] != "0" else "1"), "x" * 25, "%00", "a.b"]:
        r = client.get(f"/t/{forged}", follow_redirects=False)
        assert r.status_code == 404, (forged, r.status_code)
    # Path tricks are normalised by the router: never a 5xx, never a tracked redirect.
    for odd in ["..%2f", "%2e%2e", "a%0d%0aSet-Cookie:x=1"]:
        r = client.get(f"/t/{odd}", follow_redirects=False)
        assert r.status_code < 500 and r.status_code != 302, (odd, r.status_code)
        assert "set-cookie: x=1" not in str(r.headers).lower()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(CSV_LINE, max_size=15))
@example(lines=[b"1,2,3,pv,1511544070", b"1,2,3,pv,1511544070", b"x", b"", b"1,2,3,buy,99"])
def test_userbehavior_import_reports_every_line_and_never_stores_twice(
    db, tmp_path: Path, lines: list[bytes]
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ub.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    first = importer.import_userbehavior(db, path, batch_size=4)
    blank = sum(1 for x in b"\n".join(lines).split(b"\n") if not x.strip())
    assert first.lines == len(b"\n".join(lines).split(b"\n"))
    assert first.inserted + first.already_present + len(first.bad) + blank == first.lines
    assert all(no >= 1 and reason for no, reason in first.bad)
    again = importer.import_userbehavior(db, path, batch_size=3)
    assert again.inserted == 0 and len(again.bad) == len(first.bad)
