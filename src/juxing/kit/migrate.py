"""Alembic, driven from code: ``juxing db upgrade`` and the embedded self-migration."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def regenerate_initial(message: str = "initial schema") -> Path:
    """Rewrite the single initial migration from the models (before the first release).

    Autogenerates against an empty SQLite file, so the result depends only on the models.
    """
    import tempfile

    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config(f"sqlite:///{Path(tmp) / 'empty.db'}")
        command.revision(cfg, message=message, autogenerate=True, rev_id="0001")
    (created,) = versions.glob("0001_*.py")
    return created


if __name__ == "__main__":  # python -m juxing.kit.migrate  (make migration)
    print(regenerate_initial())
