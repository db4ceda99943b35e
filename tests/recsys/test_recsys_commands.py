"""`juxing offline-recs` and `juxing eval` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from juxing.recsys.commands import register

from .conftest import synthetic_sequences

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture()
def seq_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.txt"
    lines = [f"u{u} " + " ".join(f"i{i}" for i in s) for u, s in enumerate(synthetic_sequences())]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_recs_on_a_seq_file(app, seq_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "recs.jsonl"
    args = ["offline-recs", "--train", str(seq_file), "--format", "seq", "--k", "5"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    history = {line.split()[0]: set(line.split()[1:]) for line in seq_file.read_text().splitlines()}
    assert len(rows) == len(history)
    for row in rows:
        assert len(row["items"]) == 5
        assert len(set(row["items"])) == 5
        assert not set(row["items"]) & history[row["user"]]


def test_sibling_attribute_file_is_picked_up(app, seq_file: Path, tmp_path: Path) -> None:
    attrs = {f"i{i}": [i % 7, 10 + i % 3] for i in range(60)}
    (seq_file.parent / "train_item2attributes.json").write_text(json.dumps(attrs))
    out = tmp_path / "recs.jsonl"
    result = runner.invoke(app, ["offline-recs", "--train", str(seq_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "item attributes: train_item2attributes.json" in result.output
    assert len(read_jsonl(out)) == 300


def test_offline_recs_with_the_longtail_policy(app, seq_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "recs.jsonl"
    args = ["offline-recs", "--train", str(seq_file), "--k", "5", "--policy", "longtail"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    history = {line.split()[0]: set(line.split()[1:]) for line in seq_file.read_text().splitlines()}
    for row in read_jsonl(out):
        assert not set(row["items"]) & history[row["user"]]
        assert len(set(row["items"])) == len(row["items"])


def test_malformed_lines_are_reported_and_skipped(app, tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    good = [f"u{u} " + " ".join(f"i{i}" for i in s) for u, s in enumerate(synthetic_sequences(50))]
    lines = [*good[:10], "lonely_user", *good[10:20], "u3 i1 i2", "\x00bad i1 i2", *good[20:]]
    path.write_bytes("\n".join(lines).encode() + b"\nu999 \xff\xfe i1\n")
    out = tmp_path / "recs.jsonl"
    result = runner.invoke(app, ["offline-recs", "--train", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines (a long tmp path)
    assert "skipped 4 malformed line(s)" in said
    assert "line 11: a user id without any item" in said
    assert "line 22: user 'u3' appears twice" in said
    assert "line 23: control characters" in said
    assert "line 54: not valid UTF-8" in said
    assert len(read_jsonl(out)) == 50


def test_malformed_userbehavior_rows(app, tmp_path: Path) -> None:
    path = tmp_path / "ub.csv"
    rows = [
        f"{u},{100 + (u * 7 + t) % 30},1,pv,{1511544070 + t}"
        for u in range(1, 21)
        for t in range(6)
    ]
    rows.insert(5, "1,2,3")
    rows.insert(9, "1,2,3,click,1511544070")
    rows.insert(13, "x,2,3,pv,1511544070")
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "recs.jsonl"
    args = ["offline-recs", "--train", str(path), "--format", "userbehavior", "--k", "3"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "line 6: expected 5 comma-separated fields, got 3" in result.output
    assert "line 10: unknown behavior_type" in result.output
    assert "line 14: user_id, item_id and timestamp must be integers" in result.output
    assert len(read_jsonl(out)) == 20


def test_unknown_policy_is_refused(app, seq_file: Path, tmp_path: Path) -> None:
    args = ["offline-recs", "--train", str(seq_file), "--out", str(tmp_path / "o.jsonl")]
    result = runner.invoke(app, [*args, "--policy", "nope"])
    assert result.exit_code != 0


def test_eval_prints_all_models_policy_off_and_on(app, seq_file: Path) -> None:
    result = runner.invoke(app, ["eval", "--data", str(seq_file), "--k", "5,10"])
    assert result.exit_code == 0, result.output
    for name in ("transition-ease", "popularity", "item-knn", "implicit-als"):
        assert name in result.output
    assert "longtail" in result.output
    assert "NDCG@10" in result.output
    assert "refit" in result.output


def test_eval_strict_protocol_and_unknown_protocol(app, seq_file: Path) -> None:
    result = runner.invoke(app, ["eval", "--data", str(seq_file), "--protocol", "strict"])
    assert result.exit_code == 0, result.output
    assert "strict" in result.output
    result = runner.invoke(app, ["eval", "--data", str(seq_file), "--protocol", "nope"])
    assert result.exit_code != 0


@pytest.mark.data
@pytest.mark.slow  # 55k items: 98-217 s on the shared 2-core machine
def test_offline_recs_on_the_taobao_sample(app, shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "taobao-userbehavior-sample" / "UserBehavior_sample.csv"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    out = tmp_path / "taobao.jsonl"
    args = ["offline-recs", "--train", str(source), "--format", "userbehavior", "--k", "10"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    history: dict[str, set[str]] = {}
    for line in source.read_text().splitlines():
        user, item = line.split(",")[:2]
        history.setdefault(user, set()).add(item)
    rows = read_jsonl(out)
    assert len(rows) == 815
    for row in rows:
        assert len(row["items"]) == 10
        assert not set(row["items"]) & history[row["user"]]
