"""The feed's demo seeder: history, a trained model, the default policy, explained feeds."""

from __future__ import annotations

import random

from rich.console import Console

from juxing.config import get_settings
from juxing.feed import demo
from juxing.feed.engine import FeedEngine
from juxing.models.accounts import Role


class _Ctx:
    def __init__(self, db, users):
        self.db = db
        self.rng = random.Random(7)
        self.console = Console(quiet=True)
        self.users = users


def test_demo_seed_makes_personal_explained_feeds(kit, db, session, tmp_path, monkeypatch):
    monkeypatch.setenv("JUXING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        world = kit.build(session)
        shoppers = [kit.user(session)[0] for _ in range(25)]
        operator = kit.user(session, Role.OPERATOR)[0]
        session.commit()
        demo.seed(
            _Ctx(db, {"shopper": shoppers, "creator": world.creators, "operator": [operator]})
        )
    finally:
        get_settings.cache_clear()
    engine = FeedEngine(db, tmp_path, background=False)
    engine.start()
    assert engine.model is not None and engine.policy is not None
    placed = engine.ranked_feed(session, user_id=shoppers[0].id, n=20)
    assert len(placed) == 20
    assert any(p.reason_code == "because_you_viewed" for p in placed)
    assert all(p.reason for p in placed)
