"""Matching briefs and creators by audience fit and past conversion — pure functions.

A creator fits a brief when the shoppers they engage (viewers, clickers, followers of
their content) are the shoppers the merchant wants: the buyers of the brief's products,
and/or the audience segments the brief names. Past conversion (orders per click, smoothed
toward the platform rate so a creator with 3 clicks is not "100%") breaks ties. Every
recommendation carries its reasons in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from juxing.analytics.segments import audience_mix

FIT_WEIGHT = 0.75
CONVERSION_WEIGHT = 0.25
# Pseudo-clicks of platform-average conversion added to every creator's record.
PRIOR_CLICKS = 50.0


@dataclass(frozen=True)
class Target:
    """Who a brief wants to reach."""

    buyers: frozenset[int] = frozenset()  # shoppers who bought the brief's products
    wanted_segments: tuple[str, ...] = ()
    segment_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatorRecord:
    """What we know about one creator: engaged shoppers (id → weight), clicks, orders."""

    creator_id: int
    audience: Mapping[int, float]
    clicks: int = 0
    orders: int = 0


@dataclass(frozen=True)
class Match:
    creator_id: int
    score: float
    audience_fit: float
    conversion: float
    reasons: list[str]


def smoothed_conversion(orders: int, clicks: int, platform_rate: float) -> float:
    """Orders per click, shrunk toward the platform rate for creators with few clicks."""
    return (orders + PRIOR_CLICKS * platform_rate) / (clicks + PRIOR_CLICKS)


def segment_mix_of(
    users: Sequence[int] | frozenset[int], user_segment: Mapping[int, str]
) -> dict[str, float]:
    return audience_mix({u: 1.0 for u in users}, dict(user_segment))


def audience_fit(
    record: CreatorRecord, target: Target, user_segment: Mapping[int, str]
) -> tuple[float, list[str]]:
    """How well the creator's audience matches the target, in [0, 1], with the reasons."""
    reasons: list[str] = []
    total = sum(w for w in record.audience.values() if w > 0)
    if total <= 0:
        return 0.0, ["no engaged audience yet"]
    parts: list[float] = []
    if target.buyers:
        overlap = sum(w for u, w in record.audience.items() if u in target.buyers and w > 0)
        share = overlap / total
        n = sum(1 for u in record.audience if u in target.buyers)
        parts.append(min(1.0, share * 2.0))  # half the audience being buyers is a perfect fit
        if n:
            reasons.append(
                f"{n} of your products' buyers engage with them ({share:.0%} of their audience)"
            )
    mix = audience_mix(dict(record.audience), dict(user_segment))
    if target.wanted_segments:
        share = sum(mix.get(k, 0.0) for k in target.wanted_segments)
        parts.append(share)
        if share > 0:
            best = max(target.wanted_segments, key=lambda k: mix.get(k, 0.0))
            name = target.segment_names.get(best, best)
            reasons.append(
                f"{share:.0%} of their audience is in the wanted segments (most: {name})"
            )
    elif target.buyers:
        buyer_mix = segment_mix_of(target.buyers, user_segment)
        sim = sum(min(mix.get(k, 0.0), v) for k, v in buyer_mix.items())  # histogram overlap
        parts.append(sim)
        if sim > 0 and buyer_mix:
            top = next(iter(buyer_mix))
            reasons.append(
                f"audience resembles your buyers ({sim:.0%} overlap; buyers are mostly "
                f"{target.segment_names.get(top, top)})"
            )
    fit = sum(parts) / len(parts) if parts else 0.0
    return fit, reasons


def rank_creators(
    target: Target,
    creators: Sequence[CreatorRecord],
    user_segment: Mapping[int, str],
    *,
    limit: int = 10,
) -> list[Match]:
    """Creators for a brief, best first: audience fit, then conversion."""
    clicks = sum(c.clicks for c in creators)
    platform = (sum(c.orders for c in creators) / clicks) if clicks else 0.02
    platform = max(platform, 1e-4)
    rates = {c.creator_id: smoothed_conversion(c.orders, c.clicks, platform) for c in creators}
    best_rate = max(rates.values(), default=0.0) or 1.0
    out: list[Match] = []
    for c in creators:
        fit, reasons = audience_fit(c, target, user_segment)
        rate = rates[c.creator_id]
        conv = rate / best_rate
        if c.clicks:
            reasons.append(
                f"converts {c.orders / c.clicks:.1%} of {c.clicks} clicks (platform {platform:.1%})"
            )
        else:
            reasons.append("no click history yet: conversion assumed at the platform rate")
        score = FIT_WEIGHT * fit + CONVERSION_WEIGHT * conv
        out.append(Match(c.creator_id, round(score, 4), round(fit, 4), round(rate, 4), reasons))
    out.sort(key=lambda m: (-m.score, m.creator_id))
    return out[:limit]


@dataclass(frozen=True)
class BriefRecord:
    brief_id: int
    target: Target
    fixed_fee_minor: int = 0
    commission_rate_bp: int = 0


def rank_briefs(
    creator: CreatorRecord,
    briefs: Sequence[BriefRecord],
    user_segment: Mapping[int, str],
    *,
    limit: int = 10,
) -> list[tuple[int, float, list[str]]]:
    """Open briefs for a creator, best first: (brief id, score, reasons)."""
    top_fee = max((b.fixed_fee_minor for b in briefs), default=0) or 1
    top_rate = max((b.commission_rate_bp for b in briefs), default=0) or 1
    out = []
    for b in briefs:
        fit, reasons = audience_fit(creator, b.target, user_segment)
        pay = 0.5 * b.fixed_fee_minor / top_fee + 0.5 * b.commission_rate_bp / top_rate
        if b.fixed_fee_minor:
            reasons.append(f"fixed fee {b.fixed_fee_minor / 100:.2f}")
        if b.commission_rate_bp:
            reasons.append(f"commission {b.commission_rate_bp / 100:.1f}% of sales")
        out.append((b.brief_id, round(FIT_WEIGHT * fit + (1 - FIT_WEIGHT) * pay, 4), reasons))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out[:limit]
