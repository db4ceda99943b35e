"""``juxing import userbehavior``: the shared sample, broken files, re-runs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from juxing.feed.importer import import_userbehavior, parse_line
from juxing.models.events import BehaviorEvent


def _imported(session) -> int:
    return session.scalar(
        select(func.count())
        .select_from(BehaviorEvent)
        .where(BehaviorEvent.source == "userbehavior")
    )


def test_parse_line_reasons():
    assert parse_line(b"1,2,3,pv,1511544070\n") == (1, 2, 3, "view", 1511544070)
    assert "5 comma-separated" in parse_line(b"1,2,3,pv\n")
    assert "integers" in parse_line(b"1,x,3,pv,1511544070\n")
    assert "behavior_type" in parse_line(b"1,2,3,like,1511544070\n")
    assert "outside" in parse_line(b"1,2,3,buy,99\n")
    assert "UTF-8" in parse_line(b"1,2,3,\xff,1\n")


def test_broken_file_reports_line_numbers_and_keeps_good_rows(db, session, tmp_path):
    f = tmp_path / "broken.csv"
    f.write_bytes(
        b"1,10,100,pv,1511544070\n"
        b"garbage\n"
        b"1,11,100,cart,1511544080\n"
        b"\n"
        b"2,10,100,fly,1511544090\n"
        b"2,12,x,buy,1511544100\n"
        b"2,10,100,buy,1511544100"  # last line without newline
    )
    report = import_userbehavior(db, f)
    assert [line for line, _ in report.bad] == [2, 5, 6]
    assert report.inserted == 3
    assert _imported(session) == 3
    again = import_userbehavior(db, f)
    assert (again.inserted, again.already_present) == (0, 3)
    assert _imported(session) == 3


@pytest.mark.data
def test_shared_sample_imports_once(db, session, shared_data):
    path = shared_data / "taobao-userbehavior-sample" / "UserBehavior_sample.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    report = import_userbehavior(db, path, batch_size=20000)
    assert report.lines == 84_475
    assert report.bad == []
    total = _imported(session)
    # Exact duplicate rows (same user, item, behaviour, second) collapse into one event.
    assert report.inserted == total
    assert 84_000 < total <= 84_475
    buys = session.scalar(
        select(func.count())
        .select_from(BehaviorEvent)
        .where(BehaviorEvent.source == "userbehavior", BehaviorEvent.action == "buy")
    )
    assert 1_700 < buys <= 1_750
    again = import_userbehavior(db, path, batch_size=20000)
    assert again.inserted == 0
    assert again.already_present == total
    assert _imported(session) == total


def test_cli_prints_summary_and_bad_lines(tmp_path, monkeypatch):
    from juxing.cli import app
    from juxing.config import get_settings

    monkeypatch.setenv("JUXING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JUXING_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    f = tmp_path / "ub.csv"
    f.write_bytes(b"1,10,100,pv,1511544070\nnope\n1,11,100,buy,1511544080\n")
    try:
        result = CliRunner().invoke(app, ["import", "userbehavior", str(f)])
        assert result.exit_code == 0, result.output
        assert "line 2:" in result.output
        assert "2 events imported, 0 already present, 1 malformed" in result.output
        again = CliRunner().invoke(app, ["import", "userbehavior", str(f)])
        assert "0 events imported, 2 already present" in again.output
    finally:
        get_settings.cache_clear()
