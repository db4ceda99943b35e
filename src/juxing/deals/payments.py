"""Payment providers behind one interface, confirmed asynchronously by signed callbacks.

The built-in ``SimulatedProvider`` signs its callbacks with HMAC-SHA256 like real providers
do, and can deliver them now, twice (duplicate) or later (late, possibly after the order
timed out). Paying twice or a duplicate callback never charges or counts twice: an order
has at most one open payment, callbacks are deduplicated by the provider's event id, and a
payment succeeds once (conditional update). A success that arrives for an order that is no
longer payable is refunded at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Protocol

import httpx

log = logging.getLogger("juxing.deals.payments")

SIGNATURE_HEADER = "X-Juxing-Signature"


@dataclass(frozen=True)
class CallbackEvent:
    """A verified provider notification."""

    event_id: str
    provider_ref: str
    outcome: str  # succeeded | failed
    amount_minor: int
    currency: str


class InvalidSignature(Exception):
    pass


class PaymentProvider(Protocol):
    name: str

    def create_charge(self, *, amount_minor: int, currency: str, description: str) -> str:
        """Open a charge; returns the provider's reference."""

    def verify_callback(self, *, body: bytes, signature: str | None) -> CallbackEvent:
        """Check a callback's signature and parse it (raises InvalidSignature)."""

    def refund(self, *, provider_ref: str, amount_minor: int) -> str:
        """Return money for a charge; returns the provider's refund reference."""


class SimulatedProvider:
    """A sandbox provider: charges succeed or fail on request, callbacks are signed."""

    name = "simulated"

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.refunds: list[tuple[str, int]] = []

    def create_charge(self, *, amount_minor: int, currency: str, description: str) -> str:
        return "sim_" + secrets.token_hex(10)

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def callback(
        self,
        *,
        provider_ref: str,
        outcome: str,
        amount_minor: int,
        currency: str,
        event_id: str | None = None,
    ) -> tuple[bytes, str]:
        """A signed callback body as the provider would send it: (body, signature)."""
        body = json.dumps(
            {
                "event_id": event_id or "evt_" + secrets.token_hex(10),
                "provider_ref": provider_ref,
                "outcome": outcome,
                "amount_minor": amount_minor,
                "currency": currency,
            },
            separators=(",", ":"),
        ).encode()
        return body, self.sign(body)

    def verify_callback(self, *, body: bytes, signature: str | None) -> CallbackEvent:
        if not signature or not hmac.compare_digest(self.sign(body), signature):
            raise InvalidSignature("bad signature")
        try:
            data = json.loads(body)
            return CallbackEvent(
                event_id=str(data["event_id"]),
                provider_ref=str(data["provider_ref"]),
                outcome=str(data["outcome"]),
                amount_minor=int(data["amount_minor"]),
                currency=str(data["currency"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidSignature("malformed callback") from exc

    def refund(self, *, provider_ref: str, amount_minor: int) -> str:
        self.refunds.append((provider_ref, amount_minor))
        return "simrf_" + secrets.token_hex(8)

    def deliver_later(self, *, url: str, body: bytes, signature: str, delay_s: float) -> None:
        """Post a callback to ``url`` after ``delay_s`` seconds (a late notification)."""

        def send() -> None:
            try:
                httpx.post(
                    url,
                    content=body,
                    timeout=10,
                    headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
                )
            except httpx.HTTPError:
                log.warning("simulated late callback to %s failed", url)

        timer = threading.Timer(delay_s, send)
        timer.daemon = True
        timer.start()


_providers: dict[str, SimulatedProvider] = {}


def provider_for(name: str, *, secret: str) -> SimulatedProvider:
    """The provider named ``name`` (only ``simulated`` is built in)."""
    key = f"{name}:{hashlib.sha256(secret.encode()).hexdigest()}"
    provider = _providers.get(key)
    if provider is None:
        provider = SimulatedProvider(secret)
        _providers[key] = provider
    return provider


def payment_secret(*, configured: str | None, secret_key: str) -> str:
    """The callback-signing secret: configured, else derived from the app's secret key."""
    if configured:
        return configured
    return hmac.new(secret_key.encode(), b"juxing-payment-callbacks", hashlib.sha256).hexdigest()
