"""Who may call each endpoint: one declared line per route.

``tests/security/test_authz_matrix.py`` walks the app's route table and, for every route,
calls it as each role (anonymous, shopper, creator, merchant, operator) and, where an
object has an owner, as its owner and as another user of the same role. A route without an
entry here fails the test. Adding one is a single line in ``MATRIX``::

    "GET /api/v1/deals/{deal_id}": PUBLIC,
    "POST /api/v1/deals": roles("merchant", "operator"),
    "PATCH /api/v1/deals/{deal_id}": roles("merchant", "operator", owner="deal"),

and, once per kind of owned object, a factory in ``OWNERS`` that creates one owned by a
given user and returns its path parameters (see docs/reliability.md).

Expectations: a role not admitted gets 403 (anonymous: 401); an admitted role never gets
401/403; another user's object answers 404 (ids cannot be probed), the owner's does not;
operators see others' objects unless ``operator_sees_others=False``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import owners
from sqlalchemy.orm import Session

from juxing.accounts import service as accounts
from juxing.models.accounts import User

MISSING_ID = 999_999_999
ROLES = ("anonymous", "shopper", "creator", "merchant", "operator")
SIGNED_IN_ROLES = ROLES[1:]


@dataclass(frozen=True)
class Access:
    """The declared access rule of one route."""

    allowed: frozenset[str]
    owner: str | None = None  # a key of OWNERS: the route acts on one user's object
    operator_sees_others: bool = True
    anonymous_status: int = 401  # what a signed-out caller gets (web pages: 303 to sign-in)
    wrong_role_status: int = 403
    # A web form post: callers use a cookie session and its CSRF token, as the browser does
    # (without one every caller gets 403 csrf_failed, which the test checks too).
    form: bool = False
    # Error codes an admitted role may still get as a business precondition (e.g. 403
    # creator_profile_required for a creator who has not set up a profile yet).
    admitted_errors: frozenset[str] = frozenset()
    # A valid JSON body for owner/other calls (else ``{}``): a body that fails validation
    # would answer 422 before ownership is ever checked.
    body: dict[str, Any] | None = field(default=None, compare=False)


def roles(
    *names: str,
    owner: str | None = None,
    operator_sees_others: bool = True,
    anonymous_status: int = 401,
) -> Access:
    """Admit only ``names`` (``"anonymous"`` among them makes the route public)."""
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return Access(
        frozenset(names),
        owner=owner,
        operator_sees_others=operator_sees_others,
        anonymous_status=anonymous_status,
    )


PUBLIC = roles(*ROLES)
SIGNED_IN = roles(*SIGNED_IN_ROLES)
OPERATOR = roles("operator")
PAGE = roles(*ROLES)  # a public web page
SIGNED_IN_PAGE = roles(*SIGNED_IN_ROLES, anonymous_status=303)


def page_for(*names: str) -> Access:
    """A web page for ``names``: signed-out callers are redirected to sign in."""
    return roles(*names, anonymous_status=303)


def form_for(*names: str) -> Access:
    """A web form post for ``names`` (cookie session + CSRF token)."""
    access = roles(*names, anonymous_status=403)
    return Access(access.allowed, anonymous_status=403, form=True)


FORM = form_for(*ROLES)  # a public form (sign-in, language)


def owned(
    *names: str,
    owner: str,
    operator_sees_others: bool = True,
    body: dict[str, Any] | None = None,
    admitted_errors: frozenset[str] = frozenset(),
) -> Access:
    """Admit ``names``, and only on the caller's own object (see OWNERS)."""
    if owner not in OWNERS:
        raise ValueError(f"no owner factory {owner!r} in OWNERS")
    access = roles(*names, owner=owner, operator_sees_others=operator_sees_others)
    return Access(
        access.allowed,
        owner=owner,
        operator_sees_others=operator_sees_others,
        body=body,
        admitted_errors=admitted_errors,
    )


def fill_path(path: str, params: dict[str, int]) -> str:
    """Replace ``{name}`` (or ``{name:conv}``) placeholders; unknown ids do not exist."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(params.get(m.group(1), MISSING_ID)), path)


# --- Owned objects: name -> (role of owners, factory(session, owner) -> path params) ---------


def _api_token(session: Session, owner: User) -> dict[str, int]:
    token, _raw = accounts.create_token(session=session, user=owner, name="matrix")
    session.flush()
    return {"token_id": token.id}


OwnerFactory = Callable[[Session, User], dict[str, int]]
OWNERS: dict[str, tuple[str, OwnerFactory]] = {
    "api_token": ("shopper", _api_token),
    "campaign": ("merchant", owners.campaign),
    "deal_item": ("merchant", owners.deal_item),
    "order": ("shopper", owners.order),
    "shop_order": ("merchant", owners.shop_order),
    "payment": ("shopper", owners.payment),
    "merchant": ("merchant", owners.merchant),
    "product": ("merchant", owners.product),
    "sku": ("merchant", owners.sku),
    "post": ("creator", owners.post),
    "live_room": ("creator", owners.live_room),
    "brief": ("merchant", owners.brief),
    "application_of_creator": ("creator", owners.application_of_creator),
    "application_to_merchant": ("merchant", owners.application_to_merchant),
    "payout": ("creator", owners.payout),
    "refund_request": ("shopper", owners.refund_request),
    "shop_refund_request": ("merchant", owners.shop_refund_request),
}
MO = ("merchant", "operator")


# --- The matrix: "METHOD /path" -> Access ------------------------------------------------

MATRIX: dict[str, Access] = {
    # First written from each route's declared dependencies (require_*, CurrentUser, page
    # guards), then reviewed; the test checks what the running app actually answers.
    "GET /": PAGE,
    "GET /api/docs": PUBLIC,
    "GET /api/v1/accounts/me": SIGNED_IN,
    "PATCH /api/v1/accounts/me": SIGNED_IN,
    "POST /api/v1/accounts/register": PUBLIC,
    "GET /api/v1/accounts/users": roles("operator"),
    "POST /api/v1/accounts/users": roles("operator"),
    "PATCH /api/v1/accounts/users/{user_id}": roles("operator"),
    "POST /api/v1/auth/login": PUBLIC,
    "POST /api/v1/auth/logout": SIGNED_IN,
    "POST /api/v1/auth/token": PUBLIC,
    "GET /api/v1/auth/tokens": SIGNED_IN,
    "POST /api/v1/auth/tokens": SIGNED_IN,
    "DELETE /api/v1/auth/tokens/{token_id}": owned(
        *SIGNED_IN_ROLES, owner="api_token", operator_sees_others=False
    ),
    "GET /api/v1/campaigns": roles("merchant", "operator"),
    "POST /api/v1/campaigns": roles("merchant", "operator"),
    "GET /api/v1/campaigns/{campaign_id}": owned(*MO, owner="campaign"),
    "POST /api/v1/campaigns/{campaign_id}/approve": roles("operator"),
    "POST /api/v1/campaigns/{campaign_id}/items": roles("merchant", "operator"),
    "POST /api/v1/campaigns/{campaign_id}/reject": roles("operator"),
    "POST /api/v1/campaigns/{campaign_id}/revise": owned(*MO, owner="campaign"),
    "POST /api/v1/campaigns/{campaign_id}/submit": owned(*MO, owner="campaign"),
    "GET /api/v1/campaigns/{campaign_id}/transitions": owned(*MO, owner="campaign"),
    "GET /api/v1/cards": PUBLIC,
    "GET /api/v1/categories": PUBLIC,
    "POST /api/v1/categories": roles("operator"),
    "GET /api/v1/commission/commissions": roles("creator", "operator"),
    "GET /api/v1/commission/earnings": roles("creator"),
    "GET /api/v1/commission/holds": roles("operator"),
    "POST /api/v1/commission/holds/{commission_id}/release": roles("operator"),
    "POST /api/v1/commission/holds/{commission_id}/void": roles("operator"),
    "GET /api/v1/commission/level-bonuses": SIGNED_IN,
    "PUT /api/v1/commission/level-bonuses": roles("operator"),
    "GET /api/v1/commission/links": roles("creator"),
    "POST /api/v1/commission/links": roles("creator"),
    "GET /api/v1/commission/merchants/{merchant_id}/rules": owned(*MO, owner="merchant"),
    "PUT /api/v1/commission/merchants/{merchant_id}/rules": owned(
        *MO, owner="merchant", body={"scope": "merchant", "rate_bp": 500}
    ),
    "DELETE /api/v1/commission/merchants/{merchant_id}/rules/{rule_id}": roles(
        "merchant", "operator"
    ),
    "GET /api/v1/commission/orders/{order_id}/attribution": owned(*SIGNED_IN_ROLES, owner="order"),
    "GET /api/v1/commission/payouts": roles("creator", "operator"),
    "POST /api/v1/commission/payouts": roles("creator"),
    "GET /api/v1/commission/payouts/{payout_id}": owned(*SIGNED_IN_ROLES, owner="payout"),
    "POST /api/v1/commission/payouts/{payout_id}/settle": roles("operator"),
    "GET /api/v1/commission/payouts/{payout_id}/statement": owned(*SIGNED_IN_ROLES, owner="payout"),
    "GET /api/v1/commission/statements/creator": roles("creator", "operator"),
    "GET /api/v1/commission/statements/merchants/{merchant_id}": owned(*MO, owner="merchant"),
    "POST /api/v1/content/media": SIGNED_IN,
    "GET /api/v1/content/media/{name}": PUBLIC,
    "GET /api/v1/coupons": PUBLIC,
    "POST /api/v1/coupons": roles("merchant", "operator"),
    "POST /api/v1/coupons/claim": roles("shopper"),
    "POST /api/v1/coupons/scan/{code}": roles("shopper"),
    "GET /api/v1/creators": PUBLIC,
    "GET /api/v1/creators/applications": roles("operator"),
    "POST /api/v1/creators/applications": SIGNED_IN,
    "GET /api/v1/creators/applications/mine": SIGNED_IN,
    "POST /api/v1/creators/applications/{application_id}/approve": roles("operator"),
    "POST /api/v1/creators/applications/{application_id}/reject": roles("operator"),
    "PATCH /api/v1/creators/me": Access(
        frozenset({"creator"}), admitted_errors=frozenset({"creator_profile_required"})
    ),
    "GET /api/v1/creators/{handle}": PUBLIC,
    "PUT /api/v1/creators/{user_id}/level": roles("operator"),
    "GET /api/v1/dashboards/creator": roles("creator", "operator"),
    "GET /api/v1/dashboards/merchant/{merchant_id}": owned(*MO, owner="merchant"),
    "GET /api/v1/dashboards/operator": roles("operator"),
    "DELETE /api/v1/deal-items/{deal_item_id}": owned(*MO, owner="deal_item"),
    "GET /api/v1/deal-items/{deal_item_id}": PUBLIC,
    "POST /api/v1/deal-items/{deal_item_id}/reconcile": roles("operator"),
    "GET /api/v1/deal-items/{deal_item_id}/stock": roles("operator"),
    "POST /api/v1/events": SIGNED_IN,
    "GET /api/v1/feed": PUBLIC,
    "GET /api/v1/feed/models": roles("operator"),
    "POST /api/v1/feed/models/{version}/activate": roles("operator"),
    "GET /api/v1/feed/policies": roles("operator"),
    "POST /api/v1/feed/policies": roles("operator"),
    "POST /api/v1/feed/policies/deactivate": roles("operator"),
    "POST /api/v1/feed/policies/preview": roles("operator"),
    "GET /api/v1/feed/policies/{policy_id}": roles("operator"),
    "PATCH /api/v1/feed/policies/{policy_id}": roles("operator"),
    "POST /api/v1/feed/policies/{policy_id}/activate": roles("operator"),
    "GET /api/v1/festivals": PUBLIC,
    "POST /api/v1/festivals": roles("operator"),
    "PATCH /api/v1/festivals/{festival_id}": roles("operator"),
    "GET /api/v1/festivals/{festival}": PUBLIC,
    "GET /api/v1/festivals/{festival}/coupons": PUBLIC,
    "GET /api/v1/festivals/{festival}/deals": PUBLIC,
    "GET /api/v1/follows": SIGNED_IN,
    "POST /api/v1/follows": SIGNED_IN,
    "DELETE /api/v1/follows/{target_kind}/{target_id}": SIGNED_IN,
    "GET /api/v1/groups/{code}": PUBLIC,
    "GET /api/v1/images/{key:path}": PUBLIC,
    "GET /api/v1/inbox": SIGNED_IN,
    "POST /api/v1/inbox/read": SIGNED_IN,
    "GET /api/v1/ledger/accounts": roles("operator"),
    "GET /api/v1/ledger/reconciliations": roles("operator"),
    "POST /api/v1/ledger/reconciliations": roles("operator"),
    "GET /api/v1/live-rooms": PUBLIC,
    "POST /api/v1/live-rooms": roles("creator"),
    "GET /api/v1/live-rooms/{room_id}": PUBLIC,
    "POST /api/v1/live-rooms/{room_id}/end": owned("creator", owner="live_room"),
    "GET /api/v1/live-rooms/{room_id}/events": PUBLIC,
    "POST /api/v1/live-rooms/{room_id}/pin": owned(
        "creator", owner="live_room", body={"item_id": None}
    ),
    "POST /api/v1/live-rooms/{room_id}/start": owned("creator", owner="live_room"),
    "GET /api/v1/marketplace/applications": SIGNED_IN,
    "GET /api/v1/marketplace/applications/{application_id}": owned(
        *SIGNED_IN_ROLES, owner="application_of_creator"
    ),
    "POST /api/v1/marketplace/applications/{application_id}/accept": owned(
        "merchant", owner="application_to_merchant"
    ),
    "POST /api/v1/marketplace/applications/{application_id}/approve": owned(
        "merchant", owner="application_to_merchant"
    ),
    "POST /api/v1/marketplace/applications/{application_id}/decline": owned(
        "merchant", owner="application_to_merchant"
    ),
    "POST /api/v1/marketplace/applications/{application_id}/deliver": owned(
        "creator", owner="application_of_creator"
    ),
    "POST /api/v1/marketplace/applications/{application_id}/dispute": owned(
        "merchant", owner="application_to_merchant", body={"reason": "Not delivered"}
    ),
    "POST /api/v1/marketplace/applications/{application_id}/resolve": roles("operator"),
    "POST /api/v1/marketplace/applications/{application_id}/withdraw": owned(
        "creator", owner="application_of_creator"
    ),
    "GET /api/v1/marketplace/briefs": SIGNED_IN,
    "POST /api/v1/marketplace/briefs": roles("merchant"),
    "GET /api/v1/marketplace/briefs/recommended": roles("creator"),
    "GET /api/v1/marketplace/briefs/{brief_id}": SIGNED_IN,
    "POST /api/v1/marketplace/briefs/{brief_id}/applications": roles("creator"),
    "POST /api/v1/marketplace/briefs/{brief_id}/close": owned("merchant", owner="brief"),
    "GET /api/v1/marketplace/briefs/{brief_id}/recommended-creators": SIGNED_IN,
    "GET /api/v1/marketplace/merchants/{merchant_id}/balance": owned(
        *SIGNED_IN_ROLES, owner="merchant"
    ),
    "POST /api/v1/marketplace/merchants/{merchant_id}/balance/top-ups": roles("operator"),
    "GET /api/v1/marketplace/notifications": SIGNED_IN,
    "POST /api/v1/marketplace/notifications/read": SIGNED_IN,
    "GET /api/v1/me/coupons": SIGNED_IN,
    "GET /api/v1/me/posts": SIGNED_IN,
    "GET /api/v1/merchants": PUBLIC,
    "POST /api/v1/merchants": roles("merchant"),
    "GET /api/v1/merchants/{merchant_id}": PUBLIC,
    "PUT /api/v1/merchants/{merchant_id}/tier": roles("operator"),
    "GET /api/v1/moderation/audit": roles("operator"),
    "GET /api/v1/moderation/banned-terms": roles("operator"),
    "POST /api/v1/moderation/banned-terms": roles("operator"),
    "DELETE /api/v1/moderation/banned-terms/{term_id}": roles("operator"),
    "GET /api/v1/moderation/cases": roles("operator"),
    "POST /api/v1/moderation/cases/{case_id}/approve": roles("operator"),
    "POST /api/v1/moderation/cases/{case_id}/reject": roles("operator"),
    "GET /api/v1/orders": SIGNED_IN,
    "POST /api/v1/orders": roles("shopper"),
    "GET /api/v1/orders/{order_id}": owned(*SIGNED_IN_ROLES, owner="order"),
    "POST /api/v1/orders/{order_id}/cancel": owned(*SIGNED_IN_ROLES, owner="order"),
    "POST /api/v1/orders/{order_id}/pay": owned("shopper", owner="order"),
    "POST /api/v1/orders/{order_id}/receive": owned(*SIGNED_IN_ROLES, owner="order"),
    "GET /api/v1/orders/{order_id}/refunds": owned(*SIGNED_IN_ROLES, owner="order"),
    "POST /api/v1/orders/{order_id}/refunds": owned(*MO, owner="shop_order"),
    "POST /api/v1/orders/{order_id}/ship": owned(*MO, owner="shop_order"),
    "GET /api/v1/orders/{order_id}/refund-requests": owned(*SIGNED_IN_ROLES, owner="order"),
    "POST /api/v1/orders/{order_id}/refund-requests": owned(
        "shopper", owner="order", body={"reason": "damaged"}
    ),
    "GET /api/v1/refund-requests": SIGNED_IN,
    "GET /api/v1/refund-requests/{request_id}": owned(*SIGNED_IN_ROLES, owner="refund_request"),
    "POST /api/v1/refund-requests/{request_id}/approve": owned(*MO, owner="shop_refund_request"),
    "POST /api/v1/refund-requests/{request_id}/reject": owned(
        *MO, owner="shop_refund_request", body={"reason": "Opened and used"}
    ),
    "POST /api/v1/refund-requests/{request_id}/cancel": owned(
        *SIGNED_IN_ROLES, owner="refund_request", operator_sees_others=False
    ),
    "POST /api/v1/payments/callbacks/{provider_name}": PUBLIC,
    "GET /api/v1/payments/{payment_id}": owned(*SIGNED_IN_ROLES, owner="payment"),
    "POST /api/v1/payments/{payment_id}/simulate": owned(*SIGNED_IN_ROLES, owner="payment"),
    "GET /api/v1/posts": PUBLIC,
    "POST /api/v1/posts": SIGNED_IN,
    "DELETE /api/v1/posts/{post_id}": owned(*SIGNED_IN_ROLES, owner="post"),
    "GET /api/v1/posts/{post_id}": PUBLIC,
    "PATCH /api/v1/posts/{post_id}": owned(*SIGNED_IN_ROLES, owner="post"),
    "GET /api/v1/posts/{post_id}/moderation": owned(*SIGNED_IN_ROLES, owner="post"),
    "POST /api/v1/posts/{post_id}/publish": owned(*SIGNED_IN_ROLES, owner="post"),
    "POST /api/v1/posts/{post_id}/unpublish": owned(*SIGNED_IN_ROLES, owner="post"),
    "GET /api/v1/posts/{post_id}/versions": owned(*SIGNED_IN_ROLES, owner="post"),
    "GET /api/v1/products": PUBLIC,
    "POST /api/v1/products": roles("merchant", "operator"),
    "GET /api/v1/products/{product_id}": PUBLIC,
    "PATCH /api/v1/products/{product_id}": owned(*MO, owner="product"),
    "POST /api/v1/products/{product_id}/images": SIGNED_IN,
    "GET /api/v1/products/{product_id}/similar": PUBLIC,
    "POST /api/v1/products/{product_id}/skus": owned(
        *MO, owner="product", body={"name": "Blue", "list_price_minor": 100}
    ),
    "GET /api/v1/search": PUBLIC,
    "GET /api/v1/segments": roles("merchant", "operator"),
    "POST /api/v1/segments/compute": roles("operator"),
    "GET /api/v1/segments/creators/{creator_id}": SIGNED_IN,
    "PATCH /api/v1/skus/{sku_id}": owned(*MO, owner="sku"),
    "GET /healthz": PUBLIC,
    "POST /lang": FORM,
    "GET /merchant": page_for("merchant"),
    "GET /merchant/campaigns": page_for("merchant"),
    "POST /merchant/campaigns": form_for("merchant"),
    "GET /merchant/campaigns/{campaign_id}": page_for("merchant"),
    "POST /merchant/campaigns/{campaign_id}/items": form_for("merchant"),
    "POST /merchant/campaigns/{campaign_id}/submit": form_for("merchant"),
    "GET /merchant/products": page_for("merchant"),
    "POST /merchant/products": form_for("merchant"),
    "POST /merchant/skus/{sku_id}/stock": form_for("merchant"),
    "GET /ops": page_for("operator"),
    "GET /ops/campaigns": page_for("operator"),
    "POST /ops/campaigns/{campaign_id}/approve": form_for("operator"),
    "POST /ops/campaigns/{campaign_id}/reject": form_for("operator"),
    "POST /ops/festivals": form_for("operator"),
    "GET /ops/traffic": page_for("operator"),
    "POST /ops/traffic/preview": form_for("operator"),
    "POST /ops/traffic/save": form_for("operator"),
    "GET /readyz": PUBLIC,
    "GET /signin": PAGE,
    "POST /signin": FORM,
    "POST /signout": FORM,
    "GET /studio": page_for("creator"),
    "GET /t/{token}": PAGE,
    "GET /deals/{deal_item_id}": PAGE,
    # Web UI pages and forms added with the shopper, merchant, operator and studio screens
    # (written from each route's page guard: MaybeUser, AnyPage, ShopperPage, ...).
    "GET /c/{handle}": PAGE,
    "GET /deals/items/{deal_item_id}": PAGE,
    "GET /feed/more": PAGE,
    "GET /festival": PAGE,
    "GET /live/{room_id}": PAGE,
    "GET /posts/{post_id}": PAGE,
    "GET /posts/{post_id}/cards": PAGE,
    "GET /products/{product_id}": PAGE,
    "GET /search": PAGE,
    "GET /inbox": SIGNED_IN_PAGE,
    "GET /orders": SIGNED_IN_PAGE,
    "GET /orders/{order_id}": SIGNED_IN_PAGE,
    "POST /follows": form_for(*SIGNED_IN_ROLES),
    "POST /inbox/read": form_for(*SIGNED_IN_ROLES),
    "POST /orders/{order_id}/cancel": form_for(*SIGNED_IN_ROLES),
    "POST /orders/{order_id}/receive": form_for(*SIGNED_IN_ROLES),
    "POST /orders/{order_id}/refund-requests": form_for("shopper"),
    "POST /refund-requests/{request_id}/cancel": form_for(*SIGNED_IN_ROLES),
    "GET /checkout/{payment_id}": page_for("shopper"),
    "POST /checkout/{payment_id}": form_for("shopper"),
    "POST /deals/{deal_item_id}/buy": form_for("shopper"),
    "POST /orders/{order_id}/pay": form_for("shopper"),
    "GET /merchant/briefs": page_for("merchant"),
    "POST /merchant/briefs": form_for("merchant"),
    "GET /merchant/commission": page_for("merchant"),
    "GET /merchant/orders": page_for("merchant"),
    "POST /merchant/orders/{order_id}/refund": form_for("merchant"),
    "POST /merchant/orders/{order_id}/ship": form_for("merchant"),
    "GET /merchant/refund-requests": page_for("merchant"),
    "POST /merchant/refund-requests/{request_id}/approve": form_for("merchant"),
    "POST /merchant/refund-requests/{request_id}/reject": form_for("merchant"),
    "POST /merchant/applications/{application_id}/{decision}": form_for("merchant"),
    "GET /ops/fraud": page_for("operator"),
    "POST /ops/fraud/{commission_id}/{decision}": form_for("operator"),
    "GET /ops/moderation": page_for("operator"),
    "POST /ops/moderation/{case_id}/{decision}": form_for("operator"),
    "GET /ops/payouts": page_for("operator"),
    "POST /ops/payouts/{payout_id}/settle": form_for("operator"),
    "GET /studio/briefs": page_for("creator"),
    "GET /studio/earnings": page_for("creator"),
    "GET /studio/links": page_for("creator"),
    "POST /studio/links": form_for("creator"),
    "GET /studio/live": page_for("creator"),
    "POST /studio/live": form_for("creator"),
    "POST /studio/live/{room_id}/{action}": form_for("creator"),
    "GET /studio/picker": page_for("creator"),
    "GET /studio/posts": page_for("creator"),
    "POST /studio/posts": form_for("creator"),
    "GET /studio/posts/new": page_for("creator"),
    "GET /studio/posts/{post_id}": page_for("creator"),
    "POST /studio/posts/{post_id}": form_for("creator"),
    "POST /studio/preview": form_for("creator"),
    "POST /studio/apply": form_for("creator"),
    "POST /studio/briefs/{brief_id}/apply": form_for("creator"),
    "POST /studio/applications/{application_id}/deliver": form_for("creator"),
    "POST /studio/applications/{application_id}/withdraw": form_for("creator"),
}
