"""Festival coupons (红包 / 优惠券): issue, claim (on festival pages or by scanning a brand's
QR code, the 扫Logo game), apply at checkout. A coupon's budget is spent with a guarded
conditional update, so it is never overspent, also under concurrency."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from juxing.catalog import service as catalog
from juxing.deals.stock import rowcount
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import ensure_utc, utcnow
from juxing.models.accounts import Role, User
from juxing.models.deals import Coupon, CouponClaim


def create_coupon(
    *,
    session: Session,
    user: User,
    title: str,
    kind: str,
    valid_from: datetime,
    valid_until: datetime,
    budget_minor: int,
    amount_off_minor: int | None = None,
    percent_off: int | None = None,
    max_discount_minor: int | None = None,
    min_spend_minor: int = 0,
    per_shopper_cap: int = 1,
    currency: str = "CNY",
    festival_id: int | None = None,
    merchant_id: int | None = None,
    code: str | None = None,
) -> Coupon:
    """Issue a coupon: operators for the platform (or any merchant), merchants for their shop."""
    if merchant_id is not None:
        catalog.owned_merchant(session=session, merchant_id=merchant_id, user=user)
    elif not user.has_role(Role.OPERATOR):
        raise Unprocessable(
            "Merchants issue coupons for one of their shops.",
            code="merchant_required",
            details={"field": "body.merchant_id"},
        )
    if kind == "amount" and not amount_off_minor:
        raise Unprocessable(
            "An amount coupon needs amount_off_minor.",
            code="coupon_invalid",
            details={"field": "body.amount_off_minor"},
        )
    if kind == "percent" and not percent_off:
        raise Unprocessable(
            "A percentage coupon needs percent_off.",
            code="coupon_invalid",
            details={"field": "body.percent_off"},
        )
    valid_from, valid_until = ensure_utc(valid_from), ensure_utc(valid_until)
    if valid_until <= valid_from:
        raise Unprocessable(
            "A coupon must expire after it starts.",
            code="coupon_invalid",
            details={"field": "body.valid_until"},
        )
    code = (code or secrets.token_urlsafe(9)).strip()
    if session.scalar(select(Coupon.id).where(Coupon.code == code)) is not None:
        raise Conflict(
            "This coupon code is taken.", code="coupon_code_taken", details={"field": "body.code"}
        )
    coupon = Coupon(
        code=code,
        title=title,
        festival_id=festival_id,
        merchant_id=merchant_id,
        kind=kind,
        amount_off_minor=amount_off_minor if kind == "amount" else None,
        percent_off=percent_off if kind == "percent" else None,
        max_discount_minor=max_discount_minor,
        min_spend_minor=min_spend_minor,
        currency=currency,
        valid_from=valid_from,
        valid_until=valid_until,
        per_shopper_cap=per_shopper_cap,
        budget_minor=budget_minor,
        budget_used_minor=0,
        claimed_count=0,
        created_by_id=user.id,
    )
    session.add(coupon)
    session.flush()
    return coupon


def get_coupon(
    *, session: Session, coupon_id: int | None = None, code: str | None = None
) -> Coupon:
    """A coupon by id or code, or 404."""
    if coupon_id is not None:
        coupon = session.get(Coupon, coupon_id)
    else:
        coupon = session.scalar(select(Coupon).where(Coupon.code == code))
    if coupon is None:
        raise NotFound("No such coupon.")
    return coupon


def list_coupons(
    *, session: Session, festival_id: int | None = None, merchant_id: int | None = None
) -> list[Coupon]:
    """Coupons currently valid, for a festival page or a shop."""
    now = utcnow()
    query = select(Coupon).where(Coupon.status == "active", Coupon.valid_until > now)
    if festival_id is not None:
        query = query.where(Coupon.festival_id == festival_id)
    if merchant_id is not None:
        query = query.where(Coupon.merchant_id == merchant_id)
    return list(session.scalars(query.order_by(Coupon.id)).all())


def claim_coupon(
    *,
    session: Session,
    shopper: User,
    coupon_id: int | None = None,
    code: str | None = None,
    via: str = "page",
    now: datetime | None = None,
) -> CouponClaim:
    """A shopper claims a coupon, at most ``per_shopper_cap`` times (also concurrently)."""
    now = now or utcnow()
    coupon = get_coupon(session=session, coupon_id=coupon_id, code=code)
    if coupon.status != "active" or not (coupon.valid_from <= now < coupon.valid_until):
        raise Unprocessable(
            "This coupon is not valid now.",
            code="coupon_not_valid",
            details={
                "valid_from": coupon.valid_from.isoformat(),
                "valid_until": coupon.valid_until.isoformat(),
            },
        )
    if coupon.budget_used_minor >= coupon.budget_minor:
        raise Conflict("This coupon's budget is used up.", code="coupon_budget_exhausted")
    held = (
        session.scalar(
            select(func.count()).where(
                CouponClaim.coupon_id == coupon.id, CouponClaim.shopper_id == shopper.id
            )
        )
        or 0
    )
    if held >= coupon.per_shopper_cap:
        raise Conflict(
            f"You may claim this coupon {coupon.per_shopper_cap} time(s).",
            code="coupon_cap_reached",
            details={"cap": coupon.per_shopper_cap},
        )
    claim = CouponClaim(
        coupon_id=coupon.id,
        shopper_id=shopper.id,
        seq=held + 1,
        via=via,
        status="claimed",
        claimed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(claim)
            session.flush()
    except IntegrityError as exc:  # a parallel claim by the same shopper took this slot
        raise Conflict(
            f"You may claim this coupon {coupon.per_shopper_cap} time(s).",
            code="coupon_cap_reached",
            details={"cap": coupon.per_shopper_cap},
        ) from exc
    session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id)
        .values(claimed_count=Coupon.claimed_count + 1)
        .execution_options(synchronize_session=False)
    )
    return claim


def my_claims(*, session: Session, shopper: User) -> list[tuple[CouponClaim, Coupon]]:
    """A shopper's claimed coupons with their terms."""
    rows = session.execute(
        select(CouponClaim, Coupon)
        .join(Coupon, Coupon.id == CouponClaim.coupon_id)
        .where(CouponClaim.shopper_id == shopper.id)
        .order_by(CouponClaim.id.desc())
    ).all()
    return [(c, k) for c, k in rows]


def discount_for(coupon: Coupon, subtotal_minor: int) -> int:
    """The discount a coupon gives on ``subtotal_minor`` (never more than the subtotal)."""
    if coupon.kind == "percent":
        discount = subtotal_minor * int(coupon.percent_off or 0) // 100
    else:
        discount = int(coupon.amount_off_minor or 0)
    if coupon.max_discount_minor is not None:
        discount = min(discount, coupon.max_discount_minor)
    return max(0, min(discount, subtotal_minor))


def apply_coupon(
    *,
    session: Session,
    shopper_id: int,
    claim_id: int,
    merchant_id: int,
    subtotal_minor: int,
    currency: str,
    now: datetime,
) -> tuple[CouponClaim, int]:
    """Use a claimed coupon on an order: check its terms, spend its budget (guarded)."""
    row = session.execute(
        select(CouponClaim, Coupon)
        .join(Coupon, Coupon.id == CouponClaim.coupon_id)
        .where(CouponClaim.id == claim_id)
    ).first()
    if row is None or row[0].shopper_id != shopper_id:
        raise NotFound("No such coupon claim.", details={"field": "body.coupon_claim_id"})
    claim, coupon = row
    problem: dict[str, Any] | None = None
    if claim.status != "claimed":
        problem = {"rule": "coupon_already_used", "message": "This coupon was already used."}
    elif not (coupon.valid_from <= now < coupon.valid_until) or coupon.status != "active":
        problem = {"rule": "coupon_not_valid", "message": "This coupon is not valid now."}
    elif coupon.merchant_id is not None and coupon.merchant_id != merchant_id:
        problem = {"rule": "coupon_other_merchant", "message": "This coupon is for another shop."}
    elif coupon.currency != currency:
        problem = {"rule": "coupon_currency", "message": "This coupon is in another currency."}
    elif subtotal_minor < coupon.min_spend_minor:
        problem = {
            "rule": "coupon_min_spend",
            "message": f"This coupon needs a spend of at least {coupon.min_spend_minor}.",
        }
    if problem:
        raise Unprocessable(
            problem["message"], code=problem["rule"], details={"field": "body.coupon_claim_id"}
        )
    discount = discount_for(coupon, subtotal_minor)
    spent = session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id, Coupon.budget_used_minor + discount <= Coupon.budget_minor)
        .values(budget_used_minor=Coupon.budget_used_minor + discount)
        .execution_options(synchronize_session=False)
    )
    if rowcount(spent) != 1:
        raise Conflict(
            "This coupon's budget is used up.",
            code="coupon_budget_exhausted",
            details={"field": "body.coupon_claim_id"},
        )
    used = session.execute(
        update(CouponClaim)
        .where(CouponClaim.id == claim.id, CouponClaim.status == "claimed")
        .values(status="used", used_at=now, discount_minor=discount)
        .execution_options(synchronize_session=False)
    )
    if rowcount(used) != 1:
        raise Unprocessable(
            "This coupon was already used.",
            code="coupon_already_used",
            details={"field": "body.coupon_claim_id"},
        )
    return claim, discount


def release_coupon(*, session: Session, claim_id: int) -> None:
    """An order was cancelled: the coupon can be used again and its budget is returned."""
    claim = session.get(CouponClaim, claim_id)
    if claim is None or claim.status != "used":
        return
    done = session.execute(
        update(CouponClaim)
        .where(CouponClaim.id == claim_id, CouponClaim.status == "used")
        .values(status="claimed", used_at=None, order_id=None, discount_minor=0)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) == 1:
        session.execute(
            update(Coupon)
            .where(Coupon.id == claim.coupon_id)
            .values(budget_used_minor=Coupon.budget_used_minor - claim.discount_minor)
            .execution_options(synchronize_session=False)
        )
