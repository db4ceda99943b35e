"""Dashboard rollups: figures pre-aggregated per hour (and per minute for the live view).

:func:`refresh` recomputes every metric for the buckets in ``[start, end)`` from the source
tables (orders, order lines, refunds, commissions, clicks, behaviour events, impressions)
and replaces those buckets' rows, so it is idempotent and safe to re-run. The periodic job
refreshes the recent window; :func:`refresh` over a longer range backfills.

Definitions (the dashboards and their tests share them):

- GMV: sum of ``order_lines.amount_minor`` of paid orders, in the hour of ``orders.paid_at``;
- paid orders: orders with ``paid_at``; placed orders: by ``created_at``;
- refunds: ``refunds.amount_minor`` in the hour the refund was made;
- commission cost: ``commissions.base_minor`` of attributed commissions (merchant pays);
  creator earnings: ``base - fee + bonus``;
- channel of a sale: ``live`` / ``post`` / ``creator_link`` by the tracking link that won the
  attribution, else ``direct``;
- view / click / cart: behaviour events on the merchant's products; exposure: feed
  impressions of the merchant's items.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, case, cast, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from juxing.kit.time import ensure_utc, utcnow
from juxing.models.analytics import MetricRollup, RollupWatermark
from juxing.models.catalog import Product
from juxing.models.commission import Click, Commission, TrackingLink
from juxing.models.deals import DealItem
from juxing.models.events import BehaviorEvent
from juxing.models.feed import FeedImpression
from juxing.models.orders import Order, OrderLine, Refund

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RECENT = timedelta(hours=3)


def floor_hour(t: datetime) -> datetime:
    return ensure_utc(t).replace(minute=0, second=0, microsecond=0)


def floor_day(t: datetime) -> datetime:
    return ensure_utc(t).replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(t: datetime) -> datetime:
    day = floor_day(t)
    return day if day == ensure_utc(t) else day + DAY


UNITS = {"d": "day", "h": "hour", "m": "minute"}
SQLITE_FORMATS = {
    "d": "%Y-%m-%d 00:00:00.000000",
    "h": "%Y-%m-%d %H:00:00.000000",
    "m": "%Y-%m-%d %H:%M:00.000000",
}


def trunc(session: Session, col: Any, grain: str) -> ColumnElement[Any]:
    """The start of ``col``'s day, hour or minute (``grain`` d/h/m), computed by the database
    in UTC and in the form the column type stores (so it compares with bound datetimes)."""
    if session.get_bind().dialect.name == "postgresql":
        utc = col.op("AT TIME ZONE")(literal("UTC"))
        return func.date_trunc(UNITS[grain], utc).op("AT TIME ZONE")(literal("UTC"))
    return func.strftime(SQLITE_FORMATS[grain], col)


def _dim(col: Any) -> ColumnElement[Any]:
    return func.coalesce(cast(col, String), literal("none"))


def _metric_queries(
    session: Session, start: datetime, end: datetime, grain: str
) -> Iterable[tuple[str, str, Select[Any]]]:
    """(scope, metric, query of (scope_id, bucket, dim, value)) for every metric."""
    paid = Order.paid_at
    # Orders are indexed by created_at; paid_at follows creation within the payment window.
    paid_window = (
        (Order.created_at >= start - timedelta(days=1))
        & (Order.created_at < end)
        & (paid >= start)
        & (paid < end)
    )
    b_paid = trunc(session, paid, grain)
    line_amount = func.sum(OrderLine.amount_minor)
    yield (
        "all",
        "gmv",
        select(literal(0), b_paid, literal(""), line_amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(paid_window)
        .group_by(b_paid),
    )
    yield (
        "all",
        "paid_orders",
        select(literal(0), b_paid, literal(""), func.count()).where(paid_window).group_by(b_paid),
    )
    if grain == "m":
        return
    yield (
        "merchant",
        "gmv",
        select(Order.merchant_id, b_paid, literal(""), line_amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(paid_window)
        .group_by(Order.merchant_id, b_paid),
    )
    yield (
        "merchant",
        "paid_orders",
        select(Order.merchant_id, b_paid, literal(""), func.count())
        .where(paid_window)
        .group_by(Order.merchant_id, b_paid),
    )
    b_created = trunc(session, Order.created_at, grain)
    yield (
        "merchant",
        "placed_orders",
        select(Order.merchant_id, b_created, literal(""), func.count())
        .where(Order.created_at >= start, Order.created_at < end)
        .group_by(Order.merchant_id, b_created),
    )
    b_ref = trunc(session, Refund.created_at, grain)
    yield (
        "merchant",
        "refunds",
        select(Order.merchant_id, b_ref, literal(""), func.sum(Refund.amount_minor))
        .join(Order, Order.id == Refund.order_id)
        .where(Refund.created_at >= start, Refund.created_at < end)
        .group_by(Order.merchant_id, b_ref),
    )
    campaign = _dim(DealItem.campaign_id)
    yield (
        "merchant",
        "gmv_campaign",
        select(Order.merchant_id, b_paid, campaign, line_amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .outerjoin(DealItem, DealItem.id == OrderLine.deal_item_id)
        .where(paid_window)
        .group_by(Order.merchant_id, b_paid, campaign),
    )
    attributed = (Commission.order_line_id == OrderLine.id) & (Commission.decision == "attributed")
    creator = _dim(Commission.creator_id)
    yield (
        "merchant",
        "gmv_creator",
        select(Order.merchant_id, b_paid, creator, line_amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .outerjoin(Commission, attributed)
        .where(paid_window)
        .group_by(Order.merchant_id, b_paid, creator),
    )
    channel = case(
        (Commission.id.is_(None), literal("direct")),
        (TrackingLink.live_room_id.is_not(None), literal("live")),
        (TrackingLink.post_id.is_not(None), literal("post")),
        else_=literal("creator_link"),
    )
    yield (
        "merchant",
        "gmv_channel",
        select(Order.merchant_id, b_paid, channel, line_amount)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .outerjoin(Commission, attributed)
        .outerjoin(TrackingLink, TrackingLink.id == Commission.link_id)
        .where(paid_window)
        .group_by(Order.merchant_id, b_paid, channel),
    )
    yield (
        "merchant",
        "commission",
        select(Order.merchant_id, b_paid, literal(""), func.sum(Commission.base_minor))
        .join(Commission, Commission.order_id == Order.id)
        .where(paid_window, Commission.decision == "attributed")
        .group_by(Order.merchant_id, b_paid),
    )
    b_ev = trunc(session, BehaviorEvent.occurred_at, grain)
    for action in ("view", "click", "cart"):
        yield (
            "merchant",
            action,
            select(Product.merchant_id, b_ev, literal(""), func.count())
            .join(Product, Product.id == BehaviorEvent.target_id)
            .where(
                BehaviorEvent.occurred_at >= start,
                BehaviorEvent.occurred_at < end,
                BehaviorEvent.target_type == "product",
                BehaviorEvent.action == action,
                BehaviorEvent.source == "app",
            )
            .group_by(Product.merchant_id, b_ev),
        )
    b_imp = trunc(session, FeedImpression.shown_at, grain)
    yield (
        "merchant",
        "exposure",
        select(FeedImpression.merchant_id, b_imp, literal(""), func.count())
        .where(
            FeedImpression.shown_at >= start,
            FeedImpression.shown_at < end,
            FeedImpression.merchant_id.is_not(None),
        )
        .group_by(FeedImpression.merchant_id, b_imp),
    )
    b_click = trunc(session, Click.clicked_at, grain)
    yield (
        "creator",
        "clicks",
        select(Click.creator_id, b_click, literal(""), func.count())
        .where(Click.clicked_at >= start, Click.clicked_at < end)
        .group_by(Click.creator_id, b_click),
    )
    yield (
        "creator",
        "clicks_post",
        select(Click.creator_id, b_click, cast(Click.post_id, String), func.count())
        .where(Click.clicked_at >= start, Click.clicked_at < end, Click.post_id.is_not(None))
        .group_by(Click.creator_id, b_click, Click.post_id),
    )
    b_cp = trunc(session, Commission.paid_at, grain)
    c_window = (
        (Commission.paid_at >= start)
        & (Commission.paid_at < end)
        & (Commission.decision == "attributed")
    )
    earned = func.sum(Commission.base_minor - Commission.fee_minor + Commission.bonus_minor)
    yield (
        "creator",
        "orders",
        select(
            Commission.creator_id, b_cp, literal(""), func.count(func.distinct(Commission.order_id))
        )
        .where(c_window)
        .group_by(Commission.creator_id, b_cp),
    )
    yield (
        "creator",
        "gmv",
        select(Commission.creator_id, b_cp, literal(""), func.sum(Commission.amount_minor))
        .where(c_window)
        .group_by(Commission.creator_id, b_cp),
    )
    yield (
        "creator",
        "earnings",
        select(Commission.creator_id, b_cp, literal(""), earned)
        .where(c_window)
        .group_by(Commission.creator_id, b_cp),
    )
    yield (
        "creator",
        "gmv_product",
        select(
            Commission.creator_id,
            b_cp,
            cast(Commission.product_id, String),
            func.sum(Commission.amount_minor),
        )
        .where(c_window)
        .group_by(Commission.creator_id, b_cp, Commission.product_id),
    )
    yield (
        "creator",
        "gmv_post",
        select(
            Commission.creator_id,
            b_cp,
            cast(TrackingLink.post_id, String),
            func.sum(Commission.amount_minor),
        )
        .join(TrackingLink, TrackingLink.id == Commission.link_id)
        .where(c_window, TrackingLink.post_id.is_not(None))
        .group_by(Commission.creator_id, b_cp, TrackingLink.post_id),
    )


def refresh(session: Session, *, start: datetime, end: datetime, minutes: bool = True) -> int:
    """Recompute all rollups for hour buckets in ``[start, end)`` (minutes too, when asked),
    and keep the day rollups equal to the sum of their hours; returns the rows written.

    Each metric is one ``INSERT ... SELECT ... GROUP BY`` run by the database, so a backfill
    over months never moves source rows through Python. The day rows are updated by delta:
    the replaced hours are subtracted and the new hours added (an upsert per direction), so
    the minute-by-minute job touches only its own few hours, never whole days.
    """
    start, end = floor_hour(start), floor_hour(end - timedelta(microseconds=1)) + HOUR
    _hours_into_days(session, start, end, sign=-1)
    written = _replace(session, "h", start, end, _metric_queries(session, start, end, "h"))
    _hours_into_days(session, start, end, sign=1)
    session.execute(
        delete(MetricRollup).where(
            MetricRollup.grain == "d",
            MetricRollup.bucket >= floor_day(start),
            MetricRollup.bucket < ceil_day(end),
            MetricRollup.value == 0,
        )
    )
    if minutes:
        written += _replace(session, "m", start, end, _metric_queries(session, start, end, "m"))
    mark = session.get(RollupWatermark, "dashboards")
    if mark is None:
        session.add(RollupWatermark(name="dashboards", through=end, note=f"{written} rows"))
    elif mark.through < end:
        mark.through = end
        mark.note = f"{written} rows"
    return written


def _hours_into_days(session: Session, start: datetime, end: datetime, *, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) the hour rows of ``[start, end)`` to their days."""
    day = trunc(session, MetricRollup.bucket, "d")
    query = (
        select(
            MetricRollup.scope,
            MetricRollup.metric,
            literal("d", String),
            MetricRollup.scope_id,
            day,
            MetricRollup.dim,
            sign * func.sum(MetricRollup.value),
        )
        .where(MetricRollup.grain == "h", MetricRollup.bucket >= start, MetricRollup.bucket < end)
        .group_by(
            MetricRollup.scope, MetricRollup.metric, MetricRollup.scope_id, day, MetricRollup.dim
        )
    )
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = upsert(MetricRollup).from_select(
        ["scope", "metric", "grain", "scope_id", "bucket", "dim", "value"], query
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "scope_id", "grain", "metric", "bucket", "dim"],
        set_={"value": MetricRollup.value + stmt.excluded.value},
    )
    session.execute(stmt)


def refresh_days(session: Session, *, start: datetime, end: datetime) -> int:
    """Rebuild the day rollups of the days overlapping ``[start, end)`` from the hour rollups
    (a repair; :func:`refresh` keeps them in step by itself)."""
    d0, d1 = floor_day(start), ceil_day(end)
    day = trunc(session, MetricRollup.bucket, "d")
    query = (
        select(
            MetricRollup.scope,
            MetricRollup.metric,
            MetricRollup.scope_id,
            day,
            MetricRollup.dim,
            func.sum(MetricRollup.value),
        )
        .where(MetricRollup.grain == "h", MetricRollup.bucket >= d0, MetricRollup.bucket < d1)
        .group_by(
            MetricRollup.scope, MetricRollup.metric, MetricRollup.scope_id, day, MetricRollup.dim
        )
    )
    session.execute(
        delete(MetricRollup).where(
            MetricRollup.grain == "d", MetricRollup.bucket >= d0, MetricRollup.bucket < d1
        )
    )
    cols = ["scope", "metric", "scope_id", "bucket", "dim", "value"]
    sub = query.subquery()
    stmt = insert(MetricRollup).from_select([*cols, "grain"], select(*sub.c, literal("d", String)))
    return max(
        session.connection().execute(stmt, execution_options={"preserve_rowcount": True}).rowcount
        or 0,
        0,
    )


def _replace(
    session: Session,
    grain: str,
    start: datetime,
    end: datetime,
    queries: Iterable[tuple[str, str, Select[Any]]],
) -> int:
    """Delete the ``grain`` rows of ``[start, end)`` and insert each query's rows instead."""
    session.execute(
        delete(MetricRollup).where(
            MetricRollup.grain == grain, MetricRollup.bucket >= start, MetricRollup.bucket < end
        )
    )
    written = 0
    for scope, metric, query in queries:
        sub = query.subquery()
        sid, bucket, dim, value = sub.c
        rows = select(
            literal(scope, String),
            literal(metric, String),
            literal(grain, String),
            sid,
            bucket,
            func.substr(cast(dim, String), 1, 40),
            func.coalesce(value, 0),
        ).where(sid.is_not(None))
        stmt = insert(MetricRollup).from_select(
            ["scope", "metric", "grain", "scope_id", "bucket", "dim", "value"], rows
        )
        written += max(
            session.connection()
            .execute(stmt, execution_options={"preserve_rowcount": True})
            .rowcount
            or 0,
            0,
        )
    return written


def refresh_recent(session: Session, *, now: datetime | None = None) -> int:
    """Refresh the last few hours (what new orders, refunds and events can still change)."""
    now = now or utcnow()
    return refresh(session, start=now - RECENT, end=now + timedelta(minutes=1))
