"""The demo world of ``juxing demo``: realistic merchants, products, creators, shoppers.

Each domain adds its part through a seeder module listed in ``SEEDERS``: a function
``seed(ctx: DemoContext) -> None`` that uses the services, so the demo exercises the same
code paths as real use.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress
from sqlalchemy.orm import Session

from juxing.accounts import service as accounts
from juxing.config import Settings
from juxing.kit.db import Database
from juxing.kit.migrate import upgrade
from juxing.kit.security import hash_password
from juxing.models.accounts import Role, User

DEMO_PASSWORD = "juxing-demo"  # noqa: S105 (demo world only)

# Modules with a ``seed(ctx)`` function, run in this order after the accounts are made.
SEEDERS: tuple[str, ...] = (
    "juxing.deals.demo",  # issue 3: deals (catalog, Star Festival, coupons, order history)
    "juxing.web.demo",  # issue 8: shops, festival, deal items, orders, only when missing; first
    "juxing.content.demo",  # issue 4: content; after the deals seeder
    "juxing.commission.demo",  # issue 6: commission; after deals and content
    "juxing.feed.demo",  # issue 5: feed; keep it after the deals and content seeders
    "juxing.marketplace.demo",  # issue 7: marketplace, segments, rollups; keep it last
)

SHOPPER_NAMES = [
    "Li Na",
    "Wang Fang",
    "Zhang Wei",
    "Liu Yang",
    "Chen Jing",
    "Yang Lei",
    "Zhao Min",
    "Huang Xin",
    "Zhou Tao",
    "Wu Hui",
    "Xu Li",
    "Sun Qiang",
    "Ma Lin",
    "Zhu Yan",
    "Hu Jun",
    "Guo Mei",
    "He Ping",
    "Lin Xue",
    "Gao Feng",
    "Luo Dan",
    "Emma Clark",
    "Noah Patel",
    "Olivia Brown",
    "Liam Garcia",
    "Ava Nguyen",
    "Mia Rossi",
    "Lucas Müller",
    "Sofia Kim",
]
CREATOR_NAMES = [
    ("Xiaomei Beauty Notes", "小美美妆笔记"),
    ("Kitchen Lab Chen", "陈厨实验室"),
    ("Outdoor Ah-Jie", "阿杰户外"),
    ("Tech Unboxed Lu", "小卢开箱"),
    ("Mama Picks", "妈妈精选"),
    ("Style by Yun", "云的穿搭"),
    ("New Voice Qiao", "新人小乔"),
    ("Budget Finds Tang", "唐唐省钱"),
]
MERCHANT_NAMES = [
    ("Huaxi Cosmetics", "key_account"),
    ("Jade Kitchenware", "growing"),
    ("Summit Outdoor", "key_account"),
    ("Pixel Gadgets", "growing"),
    ("Little Sprout Baby", "new"),
    ("Silk Road Tea House", "new"),
    ("Northwind Apparel", "growing"),
    ("Handmade by Lan", "new"),
]


@dataclass
class DemoContext:
    """What seeders share: the database, a seeded RNG and the demo users by role."""

    db: Database
    rng: random.Random
    console: Console
    progress: Progress
    users: dict[str, list[User]] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def session(self) -> Session:
        return self.db.sessionmaker()


def _email(name: str, domain: str) -> str:
    return ".".join(name.lower().replace("-", " ").split()) + "@" + domain


def build_demo_world(settings: Settings, *, seed: int, console: Console) -> dict[str, str]:
    """Create the demo database from scratch; returns one login email per role."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    db = Database(settings.effective_database_url)
    rng = random.Random(seed)
    try:
        with Progress(console=console, transient=False) as progress:
            ctx = DemoContext(db=db, rng=rng, console=console, progress=progress)
            task = progress.add_task("demo: accounts", total=1 + len(SEEDERS))
            with db.session() as session:
                ctx.users = _make_accounts(session)
            progress.advance(task)
            for module in SEEDERS:
                progress.update(task, description=f"demo: {module.rsplit('.', 2)[-2]}")
                importlib.import_module(module).seed(ctx)
                progress.advance(task)
    finally:
        db.dispose()
    return {
        "operator": "operator@juxing.demo",
        "merchant": ctx.users["merchant"][0].email,
        "creator": ctx.users["creator"][0].email,
        "shopper": ctx.users["shopper"][0].email,
    }


def _make_accounts(session: Session) -> dict[str, list[User]]:
    shared_hash = hash_password(DEMO_PASSWORD)  # one argon2 run for every demo account

    def make(email: str, name: str, roles: tuple[Role, ...]) -> User:
        return accounts.create_user(
            session=session,
            email=email,
            password=DEMO_PASSWORD,
            display_name=name,
            roles=roles,
            password_hash=shared_hash,
        )

    users: dict[str, list[User]] = {"operator": [], "merchant": [], "creator": [], "shopper": []}
    users["operator"].append(make("operator@juxing.demo", "Festival Ops", (Role.OPERATOR,)))
    for name, _tier in MERCHANT_NAMES:
        users["merchant"].append(make(_email(name, "merchant.juxing.demo"), name, (Role.MERCHANT,)))
    for name, zh in CREATOR_NAMES:
        users["creator"].append(
            make(_email(name, "creator.juxing.demo"), f"{zh} {name}", (Role.CREATOR, Role.SHOPPER))
        )
    for name in SHOPPER_NAMES:
        users["shopper"].append(make(_email(name, "shopper.juxing.demo"), name, (Role.SHOPPER,)))
    return users
