"""HTTP endpoints: tracking links and clicks, rules, attribution, earnings, statements,
payouts, fraud holds, and the ledger's operator views."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from juxing.commission import links, payouts, rules, service, statements
from juxing.commission.money import Split, kept_split
from juxing.commission.policy import POLICY
from juxing.commission.reconcile import run_reconciliation
from juxing.commission.schemas import (
    AccountOut,
    AttributionLine,
    AttributionOut,
    CommissionOut,
    EarningsOut,
    HoldOut,
    LevelBonusIn,
    LevelBonusOut,
    LinkCreate,
    LinkOut,
    PayoutCreate,
    PayoutOut,
    PayoutSettle,
    PayoutStatementOut,
    ReconciliationOut,
    ReviewIn,
    RuleIn,
    RuleOut,
    StatementLineOut,
    StatementOut,
    StatementRowOut,
)
from juxing.kit.auth import (
    CreatorOrOperator,
    CreatorUser,
    CurrentUser,
    MerchantOrOperator,
    OperatorUser,
    OptionalUser,
    ensure_owner,
)
from juxing.kit.db import DbSession, get_database
from juxing.kit.errors import NotFound
from juxing.kit.idempotency import Idempotent
from juxing.kit.ratelimit import rate_limit
from juxing.kit.schemas import Limit, Offset, Page
from juxing.models.accounts import Role, User
from juxing.models.catalog import Merchant
from juxing.models.commission import (
    Commission,
    CommissionStatus,
    CreatorLevelBonus,
    FraudFlag,
    Payout,
    RuleScope,
    TrackingLink,
)
from juxing.models.ledger import LedgerAccount, ReconciliationRun

router = APIRouter(tags=["commission"])
click_router = APIRouter(tags=["commission"])

Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]
Since = Annotated[datetime | None, Query(description="From (inclusive), ISO 8601.")]
Until = Annotated[datetime | None, Query(description="Until (exclusive), ISO 8601.")]
CurrencyQ = Annotated[str, Query(pattern=r"^[A-Z]{3}$")]


def _link_out(link: TrackingLink, request: Request) -> LinkOut:
    base = request.app.state.settings.public_url or str(request.base_url)
    return LinkOut(
        id=link.id,
        code=link.code,
        token=links.token_of(link),
        url=links.link_url(link, base),
        target_type=link.target_type,
        target_id=link.target_id,
        product_id=link.product_id,
        deal_item_id=link.deal_item_id,
        post_id=link.post_id,
        live_room_id=link.live_room_id,
        created_at=link.created_at,
    )


def _commission_out(c: Commission, flags: list[str] | None = None) -> CommissionOut:
    k = kept_split(
        Split(base=c.base_minor, bonus=c.bonus_minor, fee=c.fee_minor),
        refunded_minor=c.refunded_minor,
        amount_minor=c.amount_minor,
    )
    return CommissionOut(
        id=c.id,
        order_id=c.order_id,
        order_line_id=c.order_line_id,
        creator_id=c.creator_id,
        merchant_id=c.merchant_id,
        product_id=c.product_id,
        deal_item_id=c.deal_item_id,
        decision=c.decision,
        status=c.status,
        click_id=c.click_id,
        clicked_at=c.clicked_at,
        window_days=c.window_days,
        rule_scope=c.rule_scope,
        rule_id=c.rule_id,
        base_rate_bp=c.base_rate_bp,
        bonus_bp=c.bonus_bp,
        fee_bp=c.fee_bp,
        currency=c.currency,
        amount_minor=c.amount_minor,
        refunded_minor=c.refunded_minor,
        base_minor=c.base_minor,
        bonus_minor=c.bonus_minor,
        fee_minor=c.fee_minor,
        earned_minor=0 if c.status == CommissionStatus.VOIDED else k.creator,
        explanation=c.explanation,
        placed_at=c.placed_at,
        paid_at=c.paid_at,
        received_at=c.received_at,
        available_at=c.available_at,
        matured_at=c.matured_at,
        flags=flags or [],
    )


def _payout_out(p: Payout) -> PayoutOut:
    return PayoutOut(
        id=p.id,
        creator_id=p.creator_id,
        amount_minor=p.amount_minor,
        currency=p.currency,
        status=p.status,
        period_start=p.period_start,
        requested_at=p.requested_at,
        settled_at=p.settled_at,
        failure_reason=p.failure_reason,
    )


def _own_merchant(session: Session, merchant_id: int, user: User) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    ensure_owner(merchant.owner_id, user, what="merchant")
    return merchant


# --- tracking links and clicks ------------------------------------------------------------


@router.post("/commission/links", status_code=201, response_model=LinkOut)
def create_link(
    body: LinkCreate, request: Request, user: CreatorUser, session: DbSession
) -> LinkOut:
    """Make (or get) your tracking link for a product, deal item, post or live room."""
    link = links.link_for(
        session,
        secret_key=request.app.state.settings.secret_key,
        creator_id=user.id,
        target_type=body.target_type,
        target_id=body.target_id,
        post_id=body.post_id,
    )
    return _link_out(link, request)


@router.get("/commission/links", response_model=Page[LinkOut])
def list_links(
    request: Request, user: CreatorUser, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[LinkOut]:
    """Your tracking links, newest first."""
    rows, total = links.list_links(session, creator_id=user.id, limit=limit, offset=offset)
    return Page(
        items=[_link_out(r, request) for r in rows], total=total, limit=limit, offset=offset
    )


@click_router.get(
    "/t/{token}",
    tags=["commission"],
    include_in_schema=True,
    dependencies=[Depends(rate_limit("click"))],
)
def click(token: str, request: Request, user: OptionalUser, session: DbSession) -> Response:
    """Public: record a click on a tracking link and redirect to its target."""
    settings = request.app.state.settings
    link = links.verify_token(session, secret_key=settings.secret_key, token=token)
    visitor = request.cookies.get(links.VISITOR_COOKIE)
    new_visitor = not visitor or len(visitor) > 64
    if new_visitor:
        visitor = secrets.token_urlsafe(18)
    fingerprint = links.device_fingerprint(
        user_agent=request.headers.get("user-agent", ""),
        accept_language=request.headers.get("accept-language", ""),
        platform=request.headers.get("sec-ch-ua-platform", ""),
    )
    with get_database(request).session() as write:
        links.record_click(
            write,
            link=link,
            secret_key=settings.secret_key,
            shopper_id=user.id if user is not None else None,
            visitor_id=visitor,
            ip=request.client.host if request.client else "",
            fingerprint=fingerprint,
            referrer=request.headers.get("referer"),
        )
    response = RedirectResponse(links.target_path(link), status_code=302)
    response.headers["Cache-Control"] = "no-store"
    if new_visitor:
        response.set_cookie(
            links.VISITOR_COOKIE,
            visitor or "",
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
    return response


# --- rules ----------------------------------------------------------------------------------


def _rule_out(r) -> RuleOut:
    return RuleOut(
        id=r.id,
        merchant_id=r.merchant_id,
        scope=RuleScope(r.scope),
        target_id=r.target_id,
        rate_bp=r.rate_bp,
        window_days=r.window_days,
        updated_at=r.updated_at,
    )


@router.get("/commission/merchants/{merchant_id}/rules", response_model=list[RuleOut])
def get_rules(merchant_id: int, user: MerchantOrOperator, session: DbSession) -> list[RuleOut]:
    """A shop's commission rules (its owner or an operator)."""
    _own_merchant(session, merchant_id, user)
    return [_rule_out(r) for r in rules.list_rules(session, merchant_id=merchant_id)]


@router.put("/commission/merchants/{merchant_id}/rules", response_model=RuleOut)
def put_rule(
    merchant_id: int, body: RuleIn, user: MerchantOrOperator, session: DbSession
) -> RuleOut:
    """Set the shop default, a product's rate or a campaign's rate/window."""
    merchant = _own_merchant(session, merchant_id, user)
    rule = rules.set_rule(
        session,
        merchant=merchant,
        scope=RuleScope(body.scope),
        target_id=body.target_id,
        rate_bp=body.rate_bp,
        window_days=body.window_days,
        actor_id=user.id,
    )
    return _rule_out(rule)


@router.delete("/commission/merchants/{merchant_id}/rules/{rule_id}", status_code=204)
def delete_rule(
    merchant_id: int, rule_id: int, user: MerchantOrOperator, session: DbSession
) -> Response:
    """Remove a rule (orders already placed keep their recorded rate)."""
    _own_merchant(session, merchant_id, user)
    rules.delete_rule(session, merchant_id=merchant_id, rule_id=rule_id)
    return Response(status_code=204)


@router.get("/commission/level-bonuses", response_model=list[LevelBonusOut])
def get_level_bonuses(_user: CurrentUser, session: DbSession) -> list[LevelBonusOut]:
    """The platform-paid bonus per creator level."""
    stored = {r.level: r.bonus_bp for r in session.scalars(select(CreatorLevelBonus))}
    return [
        LevelBonusOut(
            level=level,
            bonus_bp=stored.get(level, POLICY.level_bonus_bp.get(level, 0)),
            source="operator" if level in stored else "default",
        )
        for level in range(1, 6)
    ]


@router.put("/commission/level-bonuses", response_model=LevelBonusOut)
def put_level_bonus(body: LevelBonusIn, _user: OperatorUser, session: DbSession) -> LevelBonusOut:
    """Set the bonus of one creator level (applies to orders placed from now on)."""
    row = session.get(CreatorLevelBonus, body.level)
    if row is None:
        row = CreatorLevelBonus(level=body.level, bonus_bp=body.bonus_bp)
        session.add(row)
    row.bonus_bp = body.bonus_bp
    session.flush()
    return LevelBonusOut(level=row.level, bonus_bp=row.bonus_bp, source="operator")


# --- attribution, commissions, earnings ---------------------------------------------------


@router.get("/commission/orders/{order_id}/attribution", response_model=AttributionOut)
def order_attribution(order_id: int, user: CurrentUser, session: DbSession) -> AttributionOut:
    """Why each line of an order was (or was not) attributed: the click, its time, the rule."""
    order, by_line = service.explain_order(session, order_id=order_id)
    merchant = session.get(Merchant, order.merchant_id)
    if not (
        order.shopper_id == user.id
        or (merchant is not None and merchant.owner_id == user.id)
        or user.has_role(Role.OPERATOR)
    ):
        raise NotFound("No such order.")
    out = []
    for line in order.lines:
        c = by_line.get(line.id)
        out.append(
            AttributionLine(
                order_line_id=line.id,
                product_id=line.product_id,
                amount_minor=line.amount_minor,
                attributed=c is not None and c.decision == "attributed",
                explanation=c.explanation
                if c is not None
                else "no tracking-link click for this product inside the attribution window",
                commission=_commission_out(c) if c is not None else None,
            )
        )
    return AttributionOut(order_id=order.id, placed_at=order.created_at, lines=out)


def _flags_for(session: Session, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if ids:
        for cid, rule in session.execute(
            select(FraudFlag.commission_id, FraudFlag.rule).where(FraudFlag.commission_id.in_(ids))
        ):
            found.setdefault(cid, []).append(rule)
    return found


@router.get("/commission/commissions", response_model=Page[CommissionOut])
def list_commissions(
    user: CreatorOrOperator,
    session: DbSession,
    status: CommissionStatus | None = None,
    creator_id: int | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CommissionOut]:
    """Your commissions (operators: everyone's, optionally one creator's), newest first."""
    stmt = select(Commission)
    if not user.has_role(Role.OPERATOR):
        stmt = stmt.where(Commission.creator_id == user.id)
    elif creator_id is not None:
        stmt = stmt.where(Commission.creator_id == creator_id)
    if status is not None:
        stmt = stmt.where(Commission.status == status.value)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Commission.id.desc()).limit(limit).offset(offset)).all()
    flags = _flags_for(session, [c.id for c in rows])
    return Page(
        items=[_commission_out(c, flags.get(c.id)) for c in rows],
        total=int(total),
        limit=limit,
        offset=offset,
    )


@router.get("/commission/earnings", response_model=EarningsOut)
def earnings(user: CreatorUser, session: DbSession, currency: CurrencyQ = "CNY") -> EarningsOut:
    """Your pending and available balances (from the ledger)."""
    e = statements.creator_earnings(session, creator_id=user.id, currency=currency)
    return EarningsOut(
        currency=e.currency,
        pending_minor=e.pending_minor,
        available_minor=e.available_minor,
        held_count=e.held_count,
        payout_minimum_minor=POLICY.payout_minimum_minor,
    )


def _statement_response(
    rows: list[statements.StatementRow],
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    name: str,
) -> Response | StatementOut:
    if fmt == "csv":
        return Response(
            statements.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return StatementOut(
        since=since,
        until=until,
        total_amount_minor=sum(r.amount_minor for r in rows),
        total_commission_minor=sum(r.commission_minor for r in rows),
        rows=[StatementRowOut(**r.__dict__) for r in rows],
    )


@router.get("/commission/statements/creator", response_model=StatementOut)
def creator_statement(
    user: CreatorOrOperator,
    session: DbSession,
    since: Since = None,
    until: Until = None,
    format: Format = "json",
    creator_id: int | None = None,
) -> Response | StatementOut:
    """Earnings statement: every attributed line, what it earned after refunds (CSV too)."""
    who = creator_id if (creator_id and user.has_role(Role.OPERATOR)) else user.id
    rows = statements.creator_statement(session, creator_id=who, since=since, until=until)
    return _statement_response(rows, format, since, until, f"earnings-{who}")


@router.get("/commission/statements/merchants/{merchant_id}", response_model=StatementOut)
def merchant_statement(
    merchant_id: int,
    user: MerchantOrOperator,
    session: DbSession,
    since: Since = None,
    until: Until = None,
    format: Format = "json",
) -> Response | StatementOut:
    """Commission statement of a shop: every attributed line and what it was charged."""
    _own_merchant(session, merchant_id, user)
    rows = statements.merchant_statement(session, merchant_id=merchant_id, since=since, until=until)
    return _statement_response(rows, format, since, until, f"commission-merchant-{merchant_id}")


# --- payouts ----------------------------------------------------------------------------------


@router.post("/commission/payouts", status_code=201, response_model=PayoutOut)
def create_payout(
    body: PayoutCreate, user: CreatorUser, session: DbSession, idem: Idempotent
) -> Response:
    """Pay out your available balance (above the minimum). Send an Idempotency-Key."""
    return idem.run(
        lambda: _payout_out(
            payouts.request_payout(
                session, creator_id=user.id, currency=body.currency, amount_minor=body.amount_minor
            )
        ),
        status_code=201,
    )


@router.get("/commission/payouts", response_model=Page[PayoutOut])
def list_payouts(
    user: CreatorOrOperator, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[PayoutOut]:
    """Your payouts (operators: all)."""
    who = None if user.has_role(Role.OPERATOR) else user.id
    rows, total = payouts.list_payouts(session, creator_id=who, limit=limit, offset=offset)
    return Page(items=[_payout_out(p) for p in rows], total=total, limit=limit, offset=offset)


def _own_payout(session: Session, payout_id: int, user: User) -> Payout:
    payout = payouts.get_payout(session, payout_id=payout_id)
    ensure_owner(payout.creator_id, user, what="payout")
    return payout


@router.get("/commission/payouts/{payout_id}", response_model=PayoutOut)
def get_payout(payout_id: int, user: CurrentUser, session: DbSession) -> PayoutOut:
    return _payout_out(_own_payout(session, payout_id, user))


@router.get("/commission/payouts/{payout_id}/statement", response_model=PayoutStatementOut)
def payout_statement(
    payout_id: int, user: CurrentUser, session: DbSession, format: Format = "json"
) -> Response | PayoutStatementOut:
    """What this payout pays: available-balance movements since the previous payout."""
    st = payouts.statement(session, payout=_own_payout(session, payout_id, user))
    if format == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["at", "kind", "reference", "memo", "amount_minor", "balance_minor"])
        w.writerow(["", "opening", "", "", "", st.opening_minor])
        for line in st.lines:
            w.writerow(
                [
                    line.at.isoformat(),
                    line.kind,
                    line.reference,
                    line.memo,
                    line.amount_minor,
                    line.balance_minor,
                ]
            )
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="payout-{payout_id}.csv"'},
        )
    return PayoutStatementOut(
        payout=_payout_out(st.payout),
        opening_minor=st.opening_minor,
        closing_minor=st.closing_minor,
        lines=[StatementLineOut(**line.__dict__) for line in st.lines],
    )


@router.post("/commission/payouts/{payout_id}/settle", response_model=PayoutOut)
def settle_payout(
    payout_id: int, body: PayoutSettle, user: OperatorUser, session: DbSession
) -> PayoutOut:
    """Record the bank's answer: paid, or failed (the money returns to available)."""
    payout = payouts.settle_payout(
        session,
        payout_id=payout_id,
        operator_id=user.id,
        paid=body.outcome == "paid",
        reason=body.reason,
    )
    return _payout_out(payout)


# --- fraud holds --------------------------------------------------------------------------------


@router.get("/commission/holds", response_model=Page[HoldOut])
def list_holds(
    _user: OperatorUser, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[HoldOut]:
    """Commissions held by fraud rules, oldest first, with the rules that fired."""
    stmt = select(Commission).where(Commission.status == CommissionStatus.HELD)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Commission.id).limit(limit).offset(offset)).all()
    flags: dict[int, list[dict[str, object]]] = {}
    if rows:
        for f in session.scalars(
            select(FraudFlag).where(FraudFlag.commission_id.in_([c.id for c in rows]))
        ):
            flags.setdefault(f.commission_id, []).append(
                {"rule": f.rule, "details": f.details, "at": f.created_at.isoformat()}
            )
    return Page(
        items=[
            HoldOut(
                commission=_commission_out(c, [str(f["rule"]) for f in flags.get(c.id, [])]),
                flags=flags.get(c.id, []),
            )
            for c in rows
        ],
        total=int(total),
        limit=limit,
        offset=offset,
    )


@router.post("/commission/holds/{commission_id}/release", response_model=CommissionOut)
def release_hold(
    commission_id: int, body: ReviewIn, user: OperatorUser, session: DbSession
) -> CommissionOut:
    """Clear a held commission (audited with your reason)."""
    c = service.release(
        session, commission_id=commission_id, operator_id=user.id, reason=body.reason
    )
    return _commission_out(c)


@router.post("/commission/holds/{commission_id}/void", response_model=CommissionOut)
def void_hold(
    commission_id: int, body: ReviewIn, user: OperatorUser, session: DbSession
) -> CommissionOut:
    """Void a held commission: its entries are reversed (audited with your reason)."""
    c = service.void(session, commission_id=commission_id, operator_id=user.id, reason=body.reason)
    return _commission_out(c)


# --- ledger (operators) ---------------------------------------------------------------------


@router.get("/ledger/accounts", response_model=Page[AccountOut], tags=["ledger"])
def ledger_accounts(
    _user: OperatorUser,
    session: DbSession,
    kind: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AccountOut]:
    """Ledger accounts and their balances."""
    stmt = select(LedgerAccount)
    if kind:
        stmt = stmt.where(LedgerAccount.kind == kind)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(LedgerAccount.code).limit(limit).offset(offset)).all()
    return Page(
        items=[
            AccountOut(
                id=a.id,
                code=a.code,
                kind=a.kind,
                owner_id=a.owner_id,
                currency=a.currency,
                balance_minor=a.balance_minor,
            )
            for a in rows
        ],
        total=int(total),
        limit=limit,
        offset=offset,
    )


def _run_out(run: ReconciliationRun) -> ReconciliationOut:
    return ReconciliationOut(
        id=run.id,
        ok=run.ok,
        trigger=run.trigger,
        started_at=run.started_at,
        finished_at=run.finished_at,
        checked_entries=run.checked_entries,
        discrepancy_count=run.discrepancy_count,
        discrepancies=run.discrepancies,
    )


@router.post(
    "/ledger/reconciliations", status_code=201, response_model=ReconciliationOut, tags=["ledger"]
)
def reconcile_now(_user: OperatorUser, session: DbSession) -> ReconciliationOut:
    """Run the reconciliation now (same checks as ``juxing ledger check``)."""
    run, _found = run_reconciliation(session, trigger="api")
    return _run_out(run)


@router.get("/ledger/reconciliations", response_model=list[ReconciliationOut], tags=["ledger"])
def reconciliation_runs(
    _user: OperatorUser, session: DbSession, limit: Limit = 20
) -> list[ReconciliationOut]:
    """The latest reconciliation runs, newest first."""
    rows = session.scalars(
        select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
    )
    return [_run_out(r) for r in rows]
