"""Periodic jobs of the deals engine (idempotent sweeps, safe in several workers)."""

from __future__ import annotations

from juxing.deals import orders, service
from juxing.deals.payments import payment_secret, provider_for
from juxing.deals.reconcile import reconcile_redis
from juxing.deals.settings import get_deals_settings
from juxing.kit.db import Database
from juxing.worker.registry import periodic


def _redis():
    from juxing.config import get_settings
    from juxing.kit.redis import make_redis

    settings = get_settings()
    client = getattr(_redis, "client", None)
    if client is None and settings.redis_url:
        client = make_redis(settings.redis_url)
        _redis.client = client  # type: ignore[attr-defined]
    return client


def _ctx() -> orders.Buying:
    return orders.Buying(
        redis_client=_redis(), order_timeout_s=get_deals_settings().order_timeout_s
    )


@periodic("deals.advance_campaigns", every_s=5)
def advance_campaigns(db: Database) -> int:
    """scheduled -> live -> ended when their time comes."""
    with db.session() as session:
        return service.advance_campaigns(session=session)


@periodic("deals.expire_unpaid_orders", every_s=5)
def expire_unpaid_orders(db: Database) -> int:
    """Cancel orders left unpaid past their deadline; their stock goes back on sale."""
    with db.session() as session:
        return orders.expire_unpaid(session=session, ctx=_ctx())


@periodic("deals.expire_groups", every_s=10)
def expire_groups(db: Database) -> int:
    """Groups that did not fill in time: refund every member, return the stock."""
    from juxing.config import get_settings

    ds = get_deals_settings()
    provider = provider_for(
        ds.payment_provider,
        secret=payment_secret(configured=ds.payment_secret, secret_key=get_settings().secret_key),
    )
    with db.session() as session:
        return orders.expire_groups(session=session, ctx=_ctx(), provider=provider)


@periodic("deals.auto_confirm_receipts", every_s=300)
def auto_confirm_receipts(db: Database) -> int:
    """Shipped orders count as received after the configured number of days."""
    with db.session() as session:
        return orders.auto_confirm_receipts(
            session=session, after_days=get_deals_settings().receipt_auto_confirm_days
        )


@periodic("deals.reconcile_redis_stock", every_s=30)
def reconcile_redis_stock(db: Database) -> dict[str, int]:
    """Rebuild drifted or missing Redis stock counters from SQL; refresh the SQL copies."""
    with db.session() as session:
        return reconcile_redis(session=session, redis_client=_redis())


@periodic("deals.auto_approve_refund_requests", every_s=60)
def auto_approve_refund_requests(db: Database) -> int:
    """Refund requests the shop left unanswered past their deadline are approved; one
    transaction per request, so one that fails does not hold back the others."""
    import logging

    from juxing.config import get_settings
    from juxing.deals import refund_requests

    ds = get_deals_settings()
    provider = provider_for(
        ds.payment_provider,
        secret=payment_secret(configured=ds.payment_secret, secret_key=get_settings().secret_key),
    )
    with db.session() as session:
        due = refund_requests.due(session=session)
    approved = 0
    for request_id in due:
        try:
            with db.session() as session:
                outcome = refund_requests.auto_approve(
                    session=session, ctx=_ctx(), provider=provider, request_id=request_id
                )
        except Exception:
            logging.getLogger("juxing.worker").exception("refund request %s", request_id)
            continue
        approved += outcome == "approved"
    return approved
