"""The demo world ends with a marketplace in every state, segments and dashboard history."""

from __future__ import annotations

import pytest
from rich.console import Console
from sqlalchemy import func, select

from juxing.analytics import dashboards
from juxing.commission.reconcile import run_reconciliation
from juxing.config import Settings, get_settings
from juxing.demo import build_demo_world
from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.marketplace import escrow
from juxing.models.analytics import AudienceSegment, MetricRollup
from juxing.models.marketplace import Brief, BriefApplication

pytestmark = pytest.mark.slow


def test_demo_world_has_the_marketplace(tmp_path, monkeypatch):
    monkeypatch.setenv("JUXING_DATA_DIR", str(tmp_path))  # seeders that read the settings
    get_settings.cache_clear()
    settings = Settings(env="test", data_dir=tmp_path, secret_key="x" * 32)
    try:
        build_demo_world(settings, seed=7, console=Console(quiet=True))
    finally:
        get_settings.cache_clear()
    db = Database(settings.effective_database_url)
    try:
        with db.session() as s:
            states = dict(
                s.execute(
                    select(BriefApplication.status, func.count()).group_by(BriefApplication.status)
                ).all()
            )
            assert states["applied"] >= 3 and states["accepted"] == 1
            assert states["approved"] == 1 and states["declined"] == 1
            accepted = s.scalar(
                select(BriefApplication).where(BriefApplication.status == "accepted")
            )
            brief = s.get_one(Brief, accepted.brief_id)
            assert escrow.escrowed(s, merchant_id=brief.merchant_id, currency="CNY") == (
                brief.fixed_fee_minor
            )
            assert s.scalar(select(func.count()).select_from(AudienceSegment)) >= 2
            grains = dict(
                s.execute(
                    select(MetricRollup.grain, func.count()).group_by(MetricRollup.grain)
                ).all()
            )
            assert grains.get("h") and grains.get("d")
            first = s.scalar(select(func.min(MetricRollup.bucket)))
            d = dashboards.merchant_dashboard(
                session=s, merchant_id=brief.merchant_id, start=first, end=utcnow()
            )
            assert d["tables"]["series"]
            _run, found = run_reconciliation(s, trigger="test")
            assert found == []
    finally:
        db.dispose()
