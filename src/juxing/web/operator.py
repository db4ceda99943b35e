"""Operator console: the festival board, festivals, campaign approvals, the traffic policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from juxing.catalog import service as catalog
from juxing.deals import service as deals
from juxing.feed import service as feed
from juxing.feed.engine import engine_for
from juxing.feed.schemas import PolicyIn, PolicyRules, PolicyUpdate
from juxing.kit.db import DbSession
from juxing.kit.errors import Unprocessable, validation_details
from juxing.web.forms import utc_datetime
from juxing.web.pages import OperatorPage, redirect, render

router = APIRouter(include_in_schema=False)

CAMPAIGN_STATUSES = ("submitted", "scheduled", "live", "rejected", "ended", "draft")


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
