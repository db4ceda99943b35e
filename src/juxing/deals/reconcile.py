"""Reconciliation: check every deal item's counters against its orders in SQL, rebuild the
Redis counters after a crash or restart, and keep the SQL copy of Redis-backed counters
current."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from juxing.deals.stock import (
    STALE_RESERVATION_MS,
    ItemRef,
    RedisStock,
    backend_for,
    counts_from_orders,
    redis_keys,
)
from juxing.kit.errors import NotFound
from juxing.models.deals import Campaign, CampaignStatus, DealHolding, DealItem
from juxing.models.orders import Order

log = logging.getLogger("juxing.deals.reconcile")


def _pending_not_in_sql(session: Session, client: redis.Redis, item_id: int) -> dict[str, Any]:
    """Young Redis reservations whose order is not (yet) in SQL: (units, per shopper)."""
    raw: dict[bytes, bytes] = cast(Any, client.hgetall(redis_keys(item_id)[2]))
    now_ms = int(time.time() * 1000)
    tokens = {k.decode(): v.decode() for k, v in raw.items()}
    known = (
        set(
            session.scalars(
                select(Order.reservation_token).where(Order.reservation_token.in_(list(tokens)))
            ).all()
        )
        if tokens
        else set()
    )
    units, stale = 0, 0
    per_user: dict[int, int] = {}
    for token, value in tokens.items():
        shopper, qty, at = value.split(":")
        if token in known:
            continue
        if now_ms - int(at) > STALE_RESERVATION_MS:
            stale += 1
            continue
        units += int(qty)
        per_user[int(shopper)] = per_user.get(int(shopper), 0) + int(qty)
    return {"units": units, "per_user": per_user, "stale": stale, "known": len(known)}


def check_item(
    *, session: Session, deal_item_id: int, redis_client: redis.Redis | None
) -> dict[str, Any]:
    """Compare a deal item's live counters with what its orders say they must be."""
    item = session.get(DealItem, deal_item_id)
    if item is None:
        raise NotFound("No such deal item.")
    truth = counts_from_orders(session, item_id=item.id, deal_stock=item.deal_stock)
    expected = {"available": truth.available, "reserved": truth.reserved, "sold": truth.sold}
    details: dict[str, Any] = {
        "max_holding": max(truth.holdings.values(), default=0),
        "per_user_limit": item.per_user_limit,
    }
    if item.stock_backend == "redis" and redis_client is not None:
        live = RedisStock(redis_client).read(item.id)
        pending = _pending_not_in_sql(session, redis_client, item.id)
        details["pending_not_in_sql"] = pending["units"]
        details["stale_tokens"] = pending["stale"]
        if live is not None:
            expected = {
                "available": truth.available - pending["units"],
                "reserved": truth.reserved + pending["units"],
                "sold": truth.sold,
            }
            users = {
                int(k): int(v)
                for k, v in redis_client.hgetall(redis_keys(item.id)[1]).items()
                if int(v) > 0
            }
            details["max_redis_holding"] = max(users.values(), default=0)
    else:
        live = {"available": item.available, "reserved": item.reserved, "sold": item.sold}
        holdings = dict(
            session.execute(
                select(DealHolding.shopper_id, DealHolding.quantity).where(
                    DealHolding.deal_item_id == item.id, DealHolding.quantity > 0
                )
            ).all()
        )
        details["holdings_match"] = holdings == truth.holdings
    ok = (
        live is not None
        and live == expected
        and sum(live.values()) == item.deal_stock
        and min(live.values()) >= 0
        and details["max_holding"] <= item.per_user_limit
        and details.get("holdings_match", True)
    )
    return {
        "deal_item_id": item.id,
        "backend": item.stock_backend,
        "deal_stock": item.deal_stock,
        "live": live,
        "expected": expected,
        "ok": ok,
        "details": details,
    }


def repair_item(
    *, session: Session, deal_item_id: int, redis_client: redis.Redis | None
) -> dict[str, int] | None:
    """Rebuild a Redis-backed deal item's counters from SQL and copy them to its SQL row."""
    item = session.get(DealItem, deal_item_id)
    if item is None:
        raise NotFound("No such deal item.")
    if item.stock_backend != "redis":
        return None
    backend = backend_for("redis", redis_client)
    assert isinstance(backend, RedisStock)
    result = backend.rebuild(
        session,
        item=ItemRef(id=item.id, deal_stock=item.deal_stock, per_user_limit=item.per_user_limit),
    )
    sync_sql_counters(session=session, item=item)
    return result


def sync_sql_counters(*, session: Session, item: DealItem) -> None:
    """Copy what the orders say into a Redis-backed item's SQL counters (for reports)."""
    truth = counts_from_orders(session, item_id=item.id, deal_stock=item.deal_stock)
    session.execute(
        update(DealItem)
        .where(DealItem.id == item.id)
        .values(available=truth.available, reserved=truth.reserved, sold=truth.sold)
        .execution_options(synchronize_session=False)
    )


def reconcile_redis(
    *, session: Session, redis_client: redis.Redis | None, rebuild_all: bool = False
) -> dict[str, int]:
    """Sweep the Redis-backed deal items on sale: rebuild those whose counters are missing or
    drifted (or all, after a restart), and refresh their SQL copies."""
    stats = {"checked": 0, "rebuilt": 0}
    if redis_client is None:
        return stats
    ids = session.scalars(
        select(DealItem.id)
        .join(Campaign, Campaign.id == DealItem.campaign_id)
        .where(
            DealItem.stock_backend == "redis",
            Campaign.status.in_(
                [
                    CampaignStatus.SCHEDULED.value,
                    CampaignStatus.LIVE.value,
                    CampaignStatus.ENDED.value,
                ]
            ),
        )
    ).all()
    for item_id in ids:
        stats["checked"] += 1
        report = check_item(session=session, deal_item_id=item_id, redis_client=redis_client)
        if rebuild_all or not report["ok"]:
            if not report["ok"]:
                log.warning(
                    "deal item %s drifted: live=%s expected=%s",
                    item_id,
                    report["live"],
                    report["expected"],
                )
            repair_item(session=session, deal_item_id=item_id, redis_client=redis_client)
            stats["rebuilt"] += 1
        else:
            item = session.get(DealItem, item_id)
            assert item is not None
            sync_sql_counters(session=session, item=item)
    return stats
