"""Operator console: the festival board, festivals, campaign approvals, the traffic policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from juxing.analytics import dashboards
from juxing.catalog import service as catalog
from juxing.commission import payouts
from juxing.commission import service as commission
from juxing.content import service as content
from juxing.deals import service as deals
from juxing.feed import service as feed
from juxing.feed.engine import engine_for
from juxing.feed.schemas import PolicyIn, PolicyRules, PolicyUpdate
from juxing.kit.db import DbSession
from juxing.kit.errors import Unprocessable, validation_details
from juxing.kit.time import utcnow
from juxing.models.accounts import User
from juxing.models.commission import Commission, CommissionStatus, FraudFlag
from juxing.web.forms import utc_datetime
from juxing.web.i18n import N_
from juxing.web.pages import OperatorPage, redirect, render

router = APIRouter(include_in_schema=False)

CAMPAIGN_STATUSES = ("submitted", "scheduled", "live", "rejected", "ended", "draft")


def per_minute(
    rows: list[dict[str, Any]], *, end: datetime, span: int, step: int = 5
) -> list[dict[str, Any]]:
    """The dashboard's per-minute rows summed into ``step``-minute bins on a full time axis
    over the last ``span`` minutes (bins without sales are 0)."""
    last = end.astimezone(UTC).replace(second=0, microsecond=0)
    last -= timedelta(minutes=last.minute % step)
    bins = [last - timedelta(minutes=step * k) for k in range(span // step - 1, -1, -1)]
    out = {
        b.isoformat()[:16]: {"label": b.strftime("%H:%M"), "gmv": 0, "paid_orders": 0} for b in bins
    }
    for row in rows:
        at = datetime.fromisoformat(row["bucket"]).replace(second=0, microsecond=0)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        key = (at - timedelta(minutes=at.minute % step)).isoformat()[:16]
        if key in out:
            out[key]["gmv"] += row.get("gmv", 0)
            out[key]["paid_orders"] += row.get("paid_orders", 0)
    return list(out.values())


@router.get("/ops", response_class=HTMLResponse)
def board(request: Request, user: OperatorPage, session: DbSession) -> HTMLResponse:
    """The live festival board: festivals, their deals, campaigns waiting for review."""
    festivals = deals.list_festivals(session=session)
    current = next(iter(deals.list_festivals(session=session, current_only=True)), None)
    cards = deals.festival_deals(session=session, festival_id=current.id) if current else []
    counts = {
        s: deals.list_campaigns(session=session, status=s, limit=1)[1] for s in CAMPAIGN_STATUSES
    }
    top = sorted(cards, key=lambda c: c["deal_stock"] - c["stock_left"], reverse=True)[:10]
    now = utcnow()
    live = dashboards.operator_dashboard(session=session, start=now - timedelta(hours=3), end=now)
    minutes = per_minute(live["tables"]["per_minute"], end=now, span=180)
    return render(
        request,
        "ops/main.html",
        {
            "festivals": festivals,
            "current": current,
            "cards": cards,
            "counts": counts,
            "sold_chart": {
                "labels": [c["title"][:22] for c in top],
                "datasets": [
                    {"label": "Sold", "data": [c["deal_stock"] - c["stock_left"] for c in top]},
                    {"label": "Left", "data": [c["stock_left"] for c in top]},
                ],
            },
            "live": live["totals"],
            "gmv_chart": {
                "labels": [row["label"] for row in minutes],
                "datasets": [
                    {"label": N_("GMV (¥)"), "data": [row["gmv"] / 100 for row in minutes]}
                ],
            },
            "orders_chart": {
                "labels": [row["label"] for row in minutes],
                "datasets": [
                    {"label": N_("Paid orders"), "data": [row["paid_orders"] for row in minutes]}
                ],
            },
            "status_chart": {
                "labels": list(counts),
                "datasets": [{"label": "Campaigns", "data": list(counts.values())}],
            },
        },
    )


@router.post("/ops/festivals")
def create_festival(
    user: OperatorPage,
    session: DbSession,
    name: Annotated[str, Form(min_length=1, max_length=120)],
    starts_at: Annotated[str, Form(max_length=30)],
    ends_at: Annotated[str, Form(max_length=30)],
    name_zh: Annotated[str, Form(max_length=120)] = "",
    theme: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    deals.create_festival(
        session=session,
        user=user,
        name=name,
        name_zh=name_zh,
        theme=theme,
        starts_at=utc_datetime(starts_at, field="starts_at"),
        ends_at=utc_datetime(ends_at, field="ends_at"),
    )
    return redirect("/ops")


@router.get("/ops/campaigns", response_class=HTMLResponse)
def approvals(
    request: Request, user: OperatorPage, session: DbSession, status: str = "submitted"
) -> HTMLResponse:
    """Campaigns waiting for review (or any other status)."""
    rows, total = deals.list_campaigns(session=session, status=status, limit=200)
    merchants, _ = catalog.list_merchants(session=session, limit=1000)
    return render(
        request,
        "ops/campaigns.html",
        {
            "campaigns": rows,
            "total": total,
            "status": status,
            "statuses": CAMPAIGN_STATUSES,
            "merchant_names": {m.id: m.name for m in merchants},
            "festival_names": {f.id: f.name for f in deals.list_festivals(session=session)},
        },
    )


@router.post("/ops/campaigns/{campaign_id}/approve")
def approve(campaign_id: int, user: OperatorPage, session: DbSession) -> Response:
    deals.approve_campaign(session=session, user=user, campaign_id=campaign_id)
    return redirect("/ops/campaigns")


@router.post("/ops/campaigns/{campaign_id}/reject")
def reject(
    campaign_id: int,
    user: OperatorPage,
    session: DbSession,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    deals.reject_campaign(session=session, user=user, campaign_id=campaign_id, reason=reason)
    return redirect("/ops/campaigns")


# --- traffic policy --------------------------------------------------------------------------

RULE_FIELDS = (
    ("longtail_share", float),
    ("new_creator_share", float),
    ("max_per_merchant", int),
    ("max_per_creator", int),
    ("max_per_category", int),
    ("exploration_slots", int),
    ("window", int),
)


async def rule_inputs(request: Request) -> dict[str, str]:
    """The rule fields of the policy form, as typed."""
    form = await request.form()
    return {name: v for name, _kind in RULE_FIELDS if isinstance(v := form.get(name), str)}


RuleInputs = Annotated[dict[str, str], Depends(rule_inputs)]


def _rules_from_form(form: dict[str, str], base: PolicyRules) -> PolicyRules:
    """The policy rules edited in the form, validated by the feed's own schema."""
    values = base.model_dump()
    for name, kind in RULE_FIELDS:
        raw = form.get(name)
        if isinstance(raw, str) and raw.strip():
            try:
                values[name] = kind(raw)
            except ValueError as exc:
                raise Unprocessable(
                    f"{name}: not a number.", details={"field": f"form.{name}"}
                ) from exc
    try:
        return PolicyRules.model_validate(values)
    except ValidationError as exc:
        details = validation_details(list(exc.errors()))
        message = "; ".join(f"{d['field'] or 'rules'}: {d['message']}" for d in details)
        raise Unprocessable(message, code="invalid_policy", details=details) from exc


def _current_rules(session: DbSession) -> PolicyRules:
    policy = feed.active_policy(session=session)
    return PolicyRules.model_validate(policy.rules) if policy else PolicyRules()


def _policy_page(request: Request, session: DbSession, **extra: object) -> HTMLResponse:
    policy = feed.active_policy(session=session)
    rules = extra.pop("rules", None) or _current_rules(session)
    return render(
        request,
        "ops/traffic.html",
        {
            "policy": policy,
            "policies": feed.list_policies(session=session),
            "rules": rules,
            **extra,
        },
    )


@router.get("/ops/traffic", response_class=HTMLResponse)
def traffic(request: Request, user: OperatorPage, session: DbSession) -> HTMLResponse:
    """The traffic policy editor (long tail, new creators, diversity caps)."""
    return _policy_page(request, session)


@router.post("/ops/traffic/preview", response_class=HTMLResponse)
def traffic_preview(
    request: Request, user: OperatorPage, session: DbSession, form: RuleInputs
) -> HTMLResponse:
    """Simulate the exposure effects of the edited rules before saving them."""
    rules = _rules_from_form(form, _current_rules(session))
    preview = feed.preview_policy(
        session=session, engine=engine_for(request.app.state), rules=rules, sample_users=100
    )
    return _policy_page(request, session, rules=rules, preview=preview)


@router.post("/ops/traffic/save")
def traffic_save(user: OperatorPage, session: DbSession, form: RuleInputs) -> Response:
    """Save the edited rules on the active policy (a new version), or start one."""
    rules = _rules_from_form(form, _current_rules(session))
    policy = feed.active_policy(session=session)
    if policy is None:
        feed.create_policy(
            session=session,
            data=PolicyIn(name="longtail", rules=rules, activate=True),
            operator=user,
        )
    else:
        feed.update_policy(
            session=session, policy_id=policy.id, data=PolicyUpdate(rules=rules), operator=user
        )
    return redirect("/ops/traffic?saved=1")


# --- moderation, fraud review, payouts ----------------------------------------------------


@router.get("/ops/moderation", response_class=HTMLResponse)
def moderation(
    request: Request, user: OperatorPage, session: DbSession, status: str = "open"
) -> HTMLResponse:
    """The moderation queue (oldest first) with each post and what the checks found."""
    cases, total = content.list_cases(session=session, status=status or None, limit=50, offset=0)
    posts = {c.post_id: content.load_post(session, c.post_id) for c in cases}
    return render(
        request,
        "ops/moderation.html",
        {"cases": cases, "total": total, "posts": posts, "status": status},
    )


@router.post("/ops/moderation/{case_id}/{decision}")
def decide(
    case_id: int,
    decision: str,
    user: OperatorPage,
    session: DbSession,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Approve (the post goes live) or reject (the author sees the reason)."""
    if decision not in ("approve", "reject"):
        raise Unprocessable("Approve or reject.", details={"field": "path.decision"})
    if decision == "reject" and not reason.strip():
        raise Unprocessable(
            "reason: say why the post is rejected.", details={"field": "form.reason"}
        )
    content.decide_case(
        session=session,
        operator=user,
        case_id=case_id,
        approve=decision == "approve",
        reason=reason.strip() or None,
    )
    return redirect("/ops/moderation")


@router.get("/ops/fraud", response_class=HTMLResponse)
def fraud(request: Request, user: OperatorPage, session: DbSession) -> HTMLResponse:
    """Commissions held by the fraud rules, oldest first, with the rules that fired."""
    held = session.scalars(
        select(Commission)
        .where(Commission.status == CommissionStatus.HELD)
        .order_by(Commission.id)
        .limit(100)
    ).all()
    flags: dict[int, list[FraudFlag]] = {}
    if held:
        for f in session.scalars(
            select(FraudFlag).where(FraudFlag.commission_id.in_([c.id for c in held]))
        ):
            flags.setdefault(f.commission_id, []).append(f)
    return render(request, "ops/fraud.html", {"held": held, "flags": flags})


@router.post("/ops/fraud/{commission_id}/{decision}")
def review_hold(
    commission_id: int,
    decision: str,
    user: OperatorPage,
    session: DbSession,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    """Release a held commission (it matures as normal) or void it (audited either way)."""
    if decision == "release":
        commission.release(session, commission_id=commission_id, operator_id=user.id, reason=reason)
    elif decision == "void":
        commission.void(session, commission_id=commission_id, operator_id=user.id, reason=reason)
    else:
        raise Unprocessable("Release or void.", details={"field": "path.decision"})
    return redirect("/ops/fraud")


@router.get("/ops/payouts", response_class=HTMLResponse)
def payouts_page(request: Request, user: OperatorPage, session: DbSession) -> HTMLResponse:
    """Creator payouts, newest first; in-transit ones wait for the bank's answer."""
    rows, total = payouts.list_payouts(session, creator_id=None, limit=100, offset=0)
    names = {
        u.id: u.display_name
        for u in session.scalars(select(User).where(User.id.in_({p.creator_id for p in rows})))
    }
    return render(request, "ops/payouts.html", {"payouts": rows, "total": total, "names": names})


@router.post("/ops/payouts/{payout_id}/settle")
def settle(
    payout_id: int,
    user: OperatorPage,
    session: DbSession,
    outcome: Annotated[str, Form(pattern="^(paid|failed)$")],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Record the bank's answer: paid, or failed (the money returns to available)."""
    payouts.settle_payout(
        session,
        payout_id=payout_id,
        operator_id=user.id,
        paid=outcome == "paid",
        reason=reason.strip() or None,
    )
    return redirect("/ops/payouts")
