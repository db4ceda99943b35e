"""CLI: `juxing offline-recs` (batch feed lists) and `juxing eval` (the offline protocol)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from juxing.recsys.data import Interactions
from juxing.recsys.evaluation import EvalReport
from juxing.recsys.io import (
    BadLine,
    attributes_path_for,
    read_seq,
    read_userbehavior,
    with_item_attributes,
)
from juxing.recsys.pipeline import (
    PROTOCOLS,
    batch_recommend,
    evaluate_protocol,
    fit_for_serving,
)
from juxing.recsys.policy import POLICIES

console = Console(stderr=True)
MAX_BAD_SHOWN = 20


class InputFormat(StrEnum):
    seq = "seq"
    userbehavior = "userbehavior"


def _policy(value: str | None) -> str | None:
    if value is None or value.lower() in {"", "off", "none"}:
        return None
    if value not in POLICIES:
        raise typer.BadParameter(f"unknown policy {value!r}; known: off, {', '.join(POLICIES)}")
    return value


def _read(path: Path, fmt: InputFormat, attributes: Path | None = None) -> Interactions:
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file")
    with Progress(
        TextColumn("reading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(path.name, total=path.stat().st_size)

        def advance(n: int) -> None:
            bar.advance(task, n)

        if fmt is InputFormat.seq:
            data, bad = read_seq(path, progress=advance)
        else:
            data, bad = read_userbehavior(path, progress=advance)
    _report_bad(path, bad)
    if data.n_users == 0:
        console.print(f"[red]{path}: no usable interactions[/red]")
        raise typer.Exit(1)
    if attributes is None and fmt is InputFormat.seq and attributes_path_for(path).is_file():
        attributes = attributes_path_for(path)
    if attributes is not None:
        try:
            data = with_item_attributes(data, attributes)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read item attributes {attributes}: {exc}") from exc
        console.print(f"item attributes: {attributes.name}")
    console.print(
        f"{path.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_interactions:,} interactions"
    )
    return data


def _report_bad(path: Path, bad: list[BadLine]) -> None:
    if not bad:
        return
    console.print(f"[yellow]{path}: skipped {len(bad)} malformed line(s)[/yellow]")
    for b in bad[:MAX_BAD_SHOWN]:
        console.print(f"  line {b.line}: {b.reason}")
    if len(bad) > MAX_BAD_SHOWN:
        console.print(f"  ... and {len(bad) - MAX_BAD_SHOWN} more")


def offline_recs(
    train: Annotated[Path, typer.Option("--train", help="interaction log to train on")],
    out: Annotated[Path, typer.Option("--out", help="JSON lines output, one user per line")],
    fmt: Annotated[InputFormat, typer.Option("--format")] = InputFormat.seq,
    k: Annotated[int, typer.Option("--k", min=1)] = 10,
    policy: Annotated[
        str | None, typer.Option("--policy", help="traffic policy: off or longtail")
    ] = None,
    attributes: Annotated[
        Path | None,
        typer.Option(
            "--attributes",
            help="optional item -> attribute ids JSON (default: <name>_item2attributes.json "
            "next to a seq file, when present)",
        ),
    ] = None,
) -> None:
    """Train the default model and write every user's K best next items (千人千面 feed)."""
    policy_name = _policy(policy)
    data = _read(train, fmt, attributes)
    with console.status("training transition-ease"):
        model = fit_for_serving(data)
    console.print(f"trained {model.name} in {model.train_seconds:.1f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        Progress(
            SpinnerColumn(),
            TextColumn("recommending"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar,
        out.open("w", encoding="utf-8") as fh,
    ):
        task = bar.add_task("users", total=data.n_users)
        written = 0
        for rec in batch_recommend(
            model, data, k, policy=policy_name, on_batch=lambda n: bar.advance(task, n)
        ):
            fh.write(json.dumps({"user": rec.user, "items": rec.items}, ensure_ascii=False) + "\n")
            written += 1
    console.print(f"wrote {written:,} users to {out}")


def eval_command(
    data_path: Annotated[Path, typer.Option("--data", help="interaction log (seq format)")],
    fmt: Annotated[InputFormat, typer.Option("--format")] = InputFormat.seq,
    k: Annotated[str, typer.Option("--k", help="comma-separated cut-offs")] = "10,20",
    policy: Annotated[str | None, typer.Option("--policy")] = "longtail",
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="refit (tune on the validation item, refit on all but the last item), strict "
            "(train on all but the last two items only) or both",
        ),
    ] = "refit",
    attributes: Annotated[
        Path | None,
        typer.Option(
            "--attributes",
            help="optional item -> attribute ids JSON (default: <name>_item2attributes.json "
            "next to a seq file, when present)",
        ),
    ] = None,
) -> None:
    """Leave-one-out full-ranking evaluation: our model and three baselines, policy off and on."""
    try:
        ks = sorted({int(x) for x in k.split(",") if x.strip()})
    except ValueError as exc:
        raise typer.BadParameter(f"--k must be integers like 10,20, got {k!r}") from exc
    if not ks or min(ks) < 1:
        raise typer.BadParameter("--k needs at least one positive cut-off")
    if protocol not in (*PROTOCOLS, "both"):
        raise typer.BadParameter(f"--protocol must be one of {', '.join(PROTOCOLS)}, both")
    policy_name = _policy(policy)
    data = _read(data_path, fmt, attributes)
    with console.status("evaluating") as status:
        reports = evaluate_protocol(
            data, ks, policy=policy_name, protocol=protocol, on_step=lambda s: status.update(s)
        )
    out = Console()
    if not out.is_terminal:
        out = Console(width=200)  # a table cut at 80 columns is useless in logs
    out.print(report_table(reports, ks))


def report_table(reports: list[EvalReport], ks: list[int]) -> Table:
    table = Table(title="Leave-one-out, full ranking (seen items excluded), test target")
    columns = ["model", "protocol", "policy"]
    for kk in ks:
        columns += [f"HR@{kk}", f"NDCG@{kk}"]
    columns += ["coverage", "APLT", "Gini", "train s", "train CPU s"]
    for c in columns:
        table.add_column(c, justify="left" if c in {"model", "protocol", "policy"} else "right")
    for r in reports:
        row = [r.model, r.protocol, r.policy]
        for kk in ks:
            row += [f"{r.metrics[f'HR@{kk}']:.4f}", f"{r.metrics[f'NDCG@{kk}']:.4f}"]
        row += [
            f"{r.metrics['coverage']:.3f}",
            f"{r.metrics['APLT']:.3f}",
            f"{r.metrics['Gini']:.3f}",
            f"{r.train_s:.1f}",
            f"{r.train_cpu_s:.1f}",
        ]
        table.add_row(*row)
    return table


def register(app: typer.Typer) -> None:
    """Add ``offline-recs`` and ``eval`` to the main Juxing CLI."""
    app.command("offline-recs")(offline_recs)
    app.command("eval")(eval_command)
