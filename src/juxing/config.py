"""Settings: one pydantic-settings object, every variable prefixed ``JUXING_``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "juxing-development-secret-change-me"  # noqa: S105 (refused in production)


class Settings(BaseSettings):
    """Runtime configuration. Embedded default: one SQLite file in ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="JUXING_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_json: bool = False
    log_level: str = "INFO"
    # Run periodic jobs (order timeouts, campaign lifecycle, ...) inside the API process.
    # True for the embedded default; production runs `juxing worker` instead.
    inprocess_jobs: bool = True
    session_max_age_s: int = 14 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    # Public base URL used in tracking links and payment callbacks.
    public_url: str | None = None
    upload_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Cookies carry the Secure flag; turn off only for plain-http local development.
    secure_cookies: bool = False
    # Database connections per process, and how many requests one process works on at once.
    # In-flight requests are capped below the pool's capacity so that requests queue in the
    # event loop instead of holding a worker thread while waiting for a connection.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=40, ge=0)
    max_inflight_requests: int = Field(default=32, ge=0)  # 0: no cap
    # Rate limits (kit/ratelimit.py): name -> "N/S" (N requests per S seconds, per user and per
    # client IP) or "N/S,M/T" (per user N/S, per IP M/T); "off" disables one. The env value
    # (JSON) is merged over these defaults. `rate_limits_enabled=false` turns all off.
    rate_limits: dict[str, str] = {
        "login": "10/60",
        "register": "5/60",
        "buy": "30/10,300/10",
        "pay": "30/10,300/10",
        "click": "120/60,1200/60",
    }
    rate_limits_enabled: bool = True
    # Hot endpoints (buying, the home feed) answered on the event loop in front of their
    # regular routes (kit/fastroute.py); false sends every request the regular way.
    fast_paths: bool = True
    # Feed impressions older than this are deleted (the feed.prune_impressions job). The feed
    # reads 7 days (exposure damping) and the dashboards' rollups 3 hours; a rollup backfill
    # (`juxing analytics backfill`) of older hours would find no impressions to count.
    feed_impressions_retention_days: int = Field(default=30, ge=7)
    # Take the client IP from X-Forwarded-For (its last hop) only behind a trusted proxy.
    trust_forwarded_for: bool = False

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env == "production":
            problems = []
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                problems.append("JUXING_SECRET_KEY must be set to a random value of 32+ characters")
            if not self.database_url or self.database_url.startswith("sqlite"):
                problems.append("JUXING_DATABASE_URL must point at PostgreSQL in production")
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
            self.secure_cookies = True
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'juxing.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
