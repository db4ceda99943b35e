"""Dashboards for creators, merchants and operators, read from the rollups.

Each dashboard is a dict of named tables (lists of flat rows) plus headline figures, so the
same data serves JSON, charts and CSV export (:func:`to_csv`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, null, select
from sqlalchemy.orm import Session

from juxing.analytics import rollups
from juxing.kit.errors import NotFound
from juxing.kit.time import ensure_utc
from juxing.models.analytics import MetricRollup
from juxing.models.catalog import Merchant, Sku
from juxing.models.commission import Commission
from juxing.models.content import ModerationCase
from juxing.models.deals import Campaign, DealItem

LONG_TAIL_TIERS = ("new", "growing")
CREATOR_SERIES = ("clicks", "orders", "gmv", "earnings")
MERCHANT_SERIES = ("gmv", "paid_orders", "refunds", "commission")


# (metric, scope id, bucket, dim, value); bucket is None for figures summed over the window.
Row = tuple[str, int, datetime | None, str, int]

# Windows longer than this read whole days from the day rollups and chart one point per day.
DAILY_FROM = timedelta(days=3)


def _ceil_hour(t: datetime) -> datetime:
    hour = rollups.floor_hour(t)
    return hour if hour == ensure_utc(t) else hour + rollups.HOUR


def _fetch(
    session: Session,
    *,
    scope: str,
    scope_id: int | None,
    grain: str,
    metrics: Sequence[str],
    series: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[Row]:
    """Sums by metric, subject and dim, computed by the database; per bucket for the metrics
    in ``series`` only (so a month of a big shop is a few hundred rows, not tens of thousands)."""
    bucket = case((MetricRollup.metric.in_(series), MetricRollup.bucket), else_=null())
    q = (
        select(
            MetricRollup.metric,
            MetricRollup.scope_id,
            bucket,
            MetricRollup.dim,
            func.sum(MetricRollup.value),
        )
        .where(
            MetricRollup.scope == scope,
            MetricRollup.grain == grain,
            MetricRollup.metric.in_(metrics),
            MetricRollup.bucket >= start,
            MetricRollup.bucket < end,
        )
        .group_by(MetricRollup.metric, MetricRollup.scope_id, bucket, MetricRollup.dim)
    )
    if scope_id is not None:
        q = q.where(MetricRollup.scope_id == scope_id)
    return [
        (m, int(s), ensure_utc(b) if b is not None else None, d, int(v))
        for m, s, b, d, v in session.execute(q)
    ]


def _rows(
    session: Session,
    *,
    scope: str,
    scope_id: int | None,
    grain: str,
    metrics: Sequence[str],
    start: datetime,
    end: datetime,
    series: Sequence[str] = (),
) -> list[Row]:
    """Rollup sums over the buckets starting in ``[start, end)`` (per bucket for ``series``).

    For hour figures over a long window, the whole days come from the day rollups (one row
    per day instead of 24) and only the partial days at either end from the hour rollups;
    those rows then carry their day's start as bucket, so series are daily.
    """
    args: dict[str, Any] = {
        "scope": scope,
        "scope_id": scope_id,
        "metrics": metrics,
        "series": series,
    }
    if grain != "h" or end - start <= DAILY_FROM:
        return _fetch(session, grain=grain, start=start, end=end, **args)
    h0, h1 = _ceil_hour(start), _ceil_hour(end)
    d0, d1 = rollups.ceil_day(h0), rollups.floor_day(h1)
    rows = _fetch(session, grain="d", start=d0, end=d1, **args)
    edges = _fetch(session, grain="h", start=h0, end=d0, **args)
    edges += _fetch(session, grain="h", start=d1, end=h1, **args)
    rows += [(m, s, rollups.floor_day(b) if b else None, d, v) for m, s, b, d, v in edges]
    return rows


def series_grain(start: datetime, end: datetime) -> str:
    """``d`` when a window's series is daily, else ``h``."""
    return "d" if end - start > DAILY_FROM else "h"


def _series(rows: Sequence[Row], metrics: Sequence[str]) -> list[dict[str, Any]]:
    by_bucket: dict[datetime, dict[str, Any]] = {}
    for metric, _sid, bucket, _dim, value in rows:
        if metric in metrics and bucket is not None:
            row = by_bucket.setdefault(
                bucket, {"bucket": bucket.isoformat(), **dict.fromkeys(metrics, 0)}
            )
            row[metric] += value
    return [by_bucket[b] for b in sorted(by_bucket)]


def _totals(rows: Sequence[Row]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for metric, _sid, _b, dim, value in rows:
        out[metric if not dim else f"{metric}:{dim}"] += value
    return out


def _breakdown(rows: Sequence[Row], metric: str, key: str) -> list[dict[str, Any]]:
    sums: dict[str, int] = defaultdict(int)
    for m, _sid, _b, dim, value in rows:
        if m == metric:
            sums[dim] += value
    return [{key: k, "value": v} for k, v in sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))]


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def creator_dashboard(
    *, session: Session, creator_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """Clicks, orders, conversion, earnings (pending/available), top posts and products."""
    metrics = ("clicks", "orders", "gmv", "earnings", "gmv_post", "gmv_product", "clicks_post")
    rows = _rows(
        session,
        scope="creator",
        scope_id=creator_id,
        grain="h",
        metrics=metrics,
        start=start,
        end=end,
        series=CREATOR_SERIES,
    )
    t = _totals(rows)
    earned = (
        Commission.base_minor
        - Commission.fee_minor
        + Commission.bonus_minor
        - Commission.refunded_minor
    )
    states = dict(
        session.execute(
            select(Commission.status, func.coalesce(func.sum(earned), 0))
            .where(Commission.creator_id == creator_id, Commission.decision == "attributed")
            .group_by(Commission.status)
        ).all()
    )
    clicks_by_post = {r["post_id"]: r["value"] for r in _breakdown(rows, "clicks_post", "post_id")}
    return {
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "grain": series_grain(start, end),
        },
        "totals": {
            "clicks": t["clicks"],
            "orders": t["orders"],
            "conversion": _ratio(t["orders"], t["clicks"]),
            "gmv_minor": t["gmv"],
            "earnings_minor": t["earnings"],
            "earnings_pending_minor": int(states.get("pending", 0)) + int(states.get("held", 0)),
            "earnings_available_minor": int(states.get("available", 0)),
        },
        "tables": {
            "series": _series(rows, CREATOR_SERIES),
            "top_posts": [
                {
                    "post_id": r["post_id"],
                    "gmv_minor": r["value"],
                    "clicks": clicks_by_post.get(r["post_id"], 0),
                }
                for r in _breakdown(rows, "gmv_post", "post_id")[:10]
            ],
            "top_products": [
                {"product_id": r["product_id"], "gmv_minor": r["value"]}
                for r in _breakdown(rows, "gmv_product", "product_id")[:10]
            ],
        },
    }


def merchant_dashboard(
    *, session: Session, merchant_id: int, start: datetime, end: datetime
) -> dict[str, Any]:
    """GMV by campaign, creator and channel, commission and ROI, funnel, sell-through, refunds."""
    metrics = (
        "gmv",
        "paid_orders",
        "placed_orders",
        "refunds",
        "commission",
        "gmv_campaign",
        "gmv_creator",
        "gmv_channel",
        "view",
        "click",
        "cart",
        "exposure",
    )
    rows = _rows(
        session,
        scope="merchant",
        scope_id=merchant_id,
        grain="h",
        metrics=metrics,
        start=start,
        end=end,
        series=MERCHANT_SERIES,
    )
    t = _totals(rows)
    by_creator = _breakdown(rows, "gmv_creator", "creator_id")
    creator_gmv = sum(r["value"] for r in by_creator if r["creator_id"] != "none")
    titles = dict(
        session.execute(
            select(Campaign.id, Campaign.title).where(Campaign.merchant_id == merchant_id)
        ).all()
    )
    campaigns = [
        {
            "campaign_id": r["campaign_id"],
            "title": titles.get(int(r["campaign_id"]), "")
            if r["campaign_id"] != "none"
            else "(no campaign)",
            "gmv_minor": r["value"],
        }
        for r in _breakdown(rows, "gmv_campaign", "campaign_id")
    ]
    sell = session.execute(
        select(
            DealItem.id,
            Campaign.title,
            Sku.name,
            DealItem.deal_stock,
            DealItem.sold,
            DealItem.reserved,
        )
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .join(Sku, Sku.id == DealItem.sku_id)
        .where(Campaign.merchant_id == merchant_id)
        .order_by(DealItem.id)
    ).all()
    return {
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "grain": series_grain(start, end),
        },
        "totals": {
            "gmv_minor": t["gmv"],
            "paid_orders": t["paid_orders"],
            "refunds_minor": t["refunds"],
            "commission_cost_minor": t["commission"],
            "creator_gmv_minor": creator_gmv,
            "roi": _ratio(creator_gmv, t["commission"]),
            "exposure": t["exposure"],
        },
        "tables": {
            "series": _series(rows, MERCHANT_SERIES),
            "gmv_by_campaign": campaigns,
            "gmv_by_creator": [
                {"creator_id": r["creator_id"], "gmv_minor": r["value"]} for r in by_creator
            ],
            "gmv_by_channel": [
                {"channel": r["channel"], "gmv_minor": r["value"]}
                for r in _breakdown(rows, "gmv_channel", "channel")
            ],
            "funnel": [
                {
                    "step": step,
                    "count": t[metric],
                    "of_previous": _ratio(t[metric], t[prev]) if prev else None,
                }
                for step, metric, prev in (
                    ("view", "view", None),
                    ("click", "click", "view"),
                    ("cart", "cart", "click"),
                    ("order", "placed_orders", "cart"),
                    ("paid", "paid_orders", "placed_orders"),
                )
            ],
            "sell_through": [
                {
                    "deal_item_id": i,
                    "campaign": c,
                    "sku": s,
                    "deal_stock": st,
                    "sold": so,
                    "reserved": r,
                    "sell_through": _ratio(so, st),
                }
                for i, c, s, st, so, r in sell
            ],
        },
    }


def gini(values: Sequence[int]) -> float | None:
    """The Gini coefficient of non-negative values (0 = equal, → 1 = concentrated)."""
    xs = sorted(v for v in values if v >= 0)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return None
    cum = sum((i + 1) * x for i, x in enumerate(xs))
    return round((2 * cum) / (n * total) - (n + 1) / n, 6)


def operator_dashboard(*, session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Live festival view: GMV and orders per minute, long-tail shares, exposure Gini, tier mix,
    moderation backlog and fraud holds."""
    minute = _rows(
        session,
        scope="all",
        scope_id=0,
        grain="m",
        metrics=("gmv", "paid_orders"),
        start=start,
        end=end,
        series=("gmv", "paid_orders"),
    )
    hour_start = start.replace(minute=0, second=0, microsecond=0)
    per_merchant = _rows(
        session,
        scope="merchant",
        scope_id=None,
        grain="h",
        metrics=("gmv", "exposure"),
        start=hour_start,
        end=end,
    )
    tiers = dict(session.execute(select(Merchant.id, Merchant.tier)).all())
    exposure: dict[int, int] = defaultdict(int)
    gmv: dict[int, int] = defaultdict(int)
    for metric, sid, _b, _d, value in per_merchant:
        (exposure if metric == "exposure" else gmv)[sid] += value
    total_exp, total_gmv = sum(exposure.values()), sum(gmv.values())
    tail_exp = sum(v for m, v in exposure.items() if tiers.get(m) in LONG_TAIL_TIERS)
    tail_gmv = sum(v for m, v in gmv.items() if tiers.get(m) in LONG_TAIL_TIERS)
    tier_rows: dict[str, dict[str, Any]] = {}
    for m, tier in tiers.items():
        row = tier_rows.setdefault(
            tier, {"tier": tier, "merchants": 0, "exposure": 0, "gmv_minor": 0}
        )
        row["merchants"] += 1
        row["exposure"] += exposure.get(m, 0)
        row["gmv_minor"] += gmv.get(m, 0)
    t = _totals(minute)
    return {
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "shares_from": hour_start.isoformat(),
        },
        "totals": {
            "gmv_minor": t["gmv"],
            "paid_orders": t["paid_orders"],
            "long_tail_exposure_share": _ratio(tail_exp, total_exp),
            "long_tail_gmv_share": _ratio(tail_gmv, total_gmv),
            "exposure_gini": gini([exposure.get(m, 0) for m in tiers]),
            "moderation_backlog": session.scalar(
                select(func.count()).where(ModerationCase.status == "open")
            )
            or 0,
            "fraud_holds": session.scalar(select(func.count()).where(Commission.status == "held"))
            or 0,
        },
        "tables": {
            "per_minute": _series(minute, ("gmv", "paid_orders")),
            "tier_mix": sorted(tier_rows.values(), key=lambda r: r["tier"]),
        },
    }


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """One dashboard table as CSV (header from the first row's keys)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def window(
    start: datetime | None, end: datetime | None, *, default: timedelta, now: datetime
) -> tuple[datetime, datetime]:
    end = ensure_utc(end) if end else now
    start = ensure_utc(start) if start else end - default
    if start >= end:
        from juxing.kit.errors import Unprocessable

        raise Unprocessable(
            "start must be before end.",
            code="invalid_window",
            details=[{"field": "query.start", "message": "must be before end"}],
        )
    return start, end


def table(dashboard: dict[str, Any], name: str) -> list[dict[str, Any]]:
    tables = dashboard["tables"]
    if name == "totals":
        return [dashboard["totals"]]
    if name not in tables:
        raise NotFound(f"No table {name!r}; tables: totals, {', '.join(tables)}.")
    return list(tables[name])
