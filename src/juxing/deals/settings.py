"""Settings of the deals engine (also ``JUXING_``-prefixed environment variables)."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DealsSettings(BaseSettings):
    """``JUXING_STOCK_BACKEND``, ``JUXING_ORDER_TIMEOUT_S``, ... (see docs/deals.md)."""

    model_config = SettingsConfigDict(env_prefix="JUXING_", env_file=None, extra="ignore")

    # Where live deal stock is counted: "sql" (guarded UPDATE; the embedded default) or
    # "redis" (Lua scripts; needs JUXING_REDIS_URL). Applies to deal items approved later.
    stock_backend: Literal["sql", "redis"] = "sql"
    # Unpaid orders are cancelled and their stock released after this many seconds.
    order_timeout_s: int = Field(default=15 * 60, ge=5)
    # Shipped orders count as received after this many days without the shopper confirming.
    receipt_auto_confirm_days: int = Field(default=10, ge=1)
    # A shopper's refund request the shop has not answered is approved after this many days.
    refund_request_auto_approve_days: int = Field(default=3, ge=1)
    # Payment provider: "simulated" is built in (signed asynchronous callbacks).
    payment_provider: Literal["simulated"] = "simulated"
    # Signs the simulated provider's callbacks; defaults to a key derived from secret_key.
    payment_secret: str | None = None
    # Uploaded images: "local" (<data_dir>/uploads) or "s3" (any S3-compatible store).
    image_storage: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"


@functools.cache
def get_deals_settings() -> DealsSettings:
    """The process-wide deals settings, read once from the environment."""
    return DealsSettings()
