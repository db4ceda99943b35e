"""Settings: embedded default, and a production mode that refuses unsafe defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from juxing.config import DEFAULT_SECRET_KEY, Settings


def test_embedded_default_is_a_sqlite_file_in_the_data_dir(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'juxing.db'}"
    assert s.is_sqlite


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("JUXING_PORT", "9123")
    monkeypatch.setenv("JUXING_REDIS_URL", "redis://127.0.0.1:6379/3")
    s = Settings()
    assert s.port == 9123
    assert s.redis_url == "redis://127.0.0.1:6379/3"


def test_production_refuses_default_secret():
    with pytest.raises(ValidationError, match="JUXING_SECRET_KEY"):
        Settings(
            env="production",
            secret_key=DEFAULT_SECRET_KEY,
            database_url="postgresql+psycopg://x@localhost/db",
        )


def test_production_refuses_sqlite():
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(env="production", secret_key="x" * 40)


def test_production_with_real_settings_uses_secure_cookies():
    s = Settings(
        env="production", secret_key="k" * 40, database_url="postgresql+psycopg://x@localhost/db"
    )
    assert s.secure_cookies
