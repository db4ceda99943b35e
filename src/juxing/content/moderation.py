"""Automatic checks every post passes before it is public (pure functions, no database).

A post with any finding waits in the operator moderation queue instead of going live.
Checks: banned words (Chinese and English), link spam, product cards to items that are not
on sale, and absolute claims (最低价 / "lowest price ever") contradicted by the price history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

MAX_LINKS = 5
MAX_LINKS_PER_DOMAIN = 3
SHORTENER_DOMAINS = frozenset(
    {"bit.ly", "t.cn", "tinyurl.com", "goo.gl", "dwz.cn", "url.cn", "ow.ly", "is.gd", "t.co"}
)
URL_RE = re.compile(r"(?:https?|ftp)://[^\s)\]>\"']+", re.IGNORECASE)
ABSOLUTE_CLAIM_RE = re.compile(
    r"最低价|全网最低|史上最低|历史最低|价格最低|"
    r"lowest[- ]price(?: ever)?|cheapest (?:ever|anywhere)|all[- ]time low|best price ever",
    re.IGNORECASE,
)
NOT_ON_SALE = frozenset({"not_on_sale", "ended"})


@dataclass(frozen=True)
class Finding:
    """Why a post needs a human: ``check`` names the rule."""

    check: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CardFacts:
    """What moderation needs to know about one product card."""

    product_id: int
    status: str
    current_price_minor: int | None
    title: str = ""


@cache
def shipped_banned_terms() -> frozenset[str]:
    """The banned words shipped with Juxing (``content/data/banned_words.txt``)."""
    text = resources.files("juxing.content").joinpath("data/banned_words.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    )


def check_banned_terms(text: str, terms: Iterable[str]) -> list[Finding]:
    lowered = text.lower()
    hits = sorted({t for t in terms if t and t in lowered})
    if not hits:
        return []
    return [Finding("banned_words", "The post contains banned words.", {"terms": hits})]


def check_link_spam(text: str) -> list[Finding]:
    urls = URL_RE.findall(text)
    findings = []
    if len(urls) > MAX_LINKS:
        findings.append(
            Finding(
                "link_spam",
                f"The post has {len(urls)} links (at most {MAX_LINKS}).",
                {"links": len(urls)},
            )
        )
    domains: dict[str, int] = {}
    for url in urls:
        host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
        domains[host] = domains.get(host, 0) + 1
    shorteners = sorted(d for d in domains if d in SHORTENER_DOMAINS)
    if shorteners:
        findings.append(
            Finding("link_spam", "The post uses link shorteners.", {"domains": shorteners})
        )
    repeated = sorted(d for d, n in domains.items() if n > MAX_LINKS_PER_DOMAIN)
    if repeated:
        findings.append(
            Finding(
                "link_spam",
                f"The post links the same site more than {MAX_LINKS_PER_DOMAIN} times.",
                {"domains": repeated},
            )
        )
    return findings


def check_cards_on_sale(cards: Sequence[CardFacts]) -> list[Finding]:
    off = [c.product_id for c in cards if c.status in NOT_ON_SALE]
    if not off:
        return []
    return [
        Finding(
            "card_not_on_sale",
            "Product cards point at items that are not on sale.",
            {"product_ids": off},
        )
    ]


def check_absolute_claims(
    text: str, cards: Sequence[CardFacts], lowest_seen: Mapping[int, int]
) -> list[Finding]:
    """An absolute price claim must be true of every card: its current price is the lowest
    the price history has seen for that product."""
    claims = sorted({m.group(0) for m in ABSOLUTE_CLAIM_RE.finditer(text)})
    if not claims:
        return []
    priced = [c for c in cards if c.current_price_minor is not None]
    if not priced:
        return [
            Finding(
                "absolute_claim",
                "An absolute price claim without a product card to back it.",
                {"claims": claims},
            )
        ]
    contradicted = [
        {
            "product_id": c.product_id,
            "current_price_minor": c.current_price_minor,
            "lowest_seen_minor": lowest_seen[c.product_id],
        }
        for c in priced
        if c.product_id in lowest_seen
        and c.current_price_minor is not None
        and lowest_seen[c.product_id] < c.current_price_minor
    ]
    if not contradicted:
        return []
    return [
        Finding(
            "absolute_claim",
            "An absolute price claim is contradicted by the price history.",
            {"claims": claims, "products": contradicted},
        )
    ]


def check_post(
    *,
    texts: Sequence[str],
    cards: Sequence[CardFacts],
    banned_terms: Iterable[str],
    lowest_seen: Mapping[int, int],
) -> list[Finding]:
    """Every automatic check over a post's text and cards; empty means it may go live."""
    text = "\n".join(t for t in texts if t)
    return [
        *check_banned_terms(text, banned_terms),
        *check_link_spam(text),
        *check_cards_on_sale(cards),
        *check_absolute_claims(text, cards, lowest_seen),
    ]
