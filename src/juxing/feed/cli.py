"""CLI of the feed: ``juxing import userbehavior FILE`` and ``juxing train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from juxing.config import get_settings

import_app = typer.Typer(help="Import behaviour logs into the event store.", no_args_is_help=True)
console = Console(stderr=True)
MAX_BAD_SHOWN = 20


def _database():
    from juxing.kit.db import Database
    from juxing.kit.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.effective_database_url)
    return Database(settings.effective_database_url)


@import_app.command("userbehavior")
def import_userbehavior(
    file: Annotated[Path, typer.Argument(help="Tianchi UserBehavior CSV (no header).")],
    batch_size: Annotated[int, typer.Option(min=100, max=50_000)] = 5000,
) -> None:
    """Stream a Tianchi UserBehavior CSV into the event log (re-runs add nothing twice)."""
    from juxing.feed.importer import import_userbehavior as run

    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file")
    db = _database()
    shown = 0

    def on_bad(line: int, reason: str) -> None:
        nonlocal shown
        if shown < MAX_BAD_SHOWN:
            console.print(f"[yellow]line {line}: {reason} (skipped)[/yellow]")
        shown += 1

    try:
        with Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(file.name, total=file.stat().st_size)
            report = run(
                db,
                file,
                batch_size=batch_size,
                on_bytes=lambda n: bar.advance(task, n),
                on_bad=on_bad,
            )
    finally:
        db.dispose()
    if len(report.bad) > MAX_BAD_SHOWN:
        console.print(f"[yellow]... and {len(report.bad) - MAX_BAD_SHOWN} more malformed lines[/]")
    typer.echo(
        f"{report.lines} lines: {report.inserted} events imported, "
        f"{report.already_present} already present, {len(report.bad)} malformed lines skipped"
    )


def train(
    source: Annotated[
        list[str] | None,
        typer.Option(help="Only events of this source (app, userbehavior); repeatable."),
    ] = None,
    activate: Annotated[bool, typer.Option("--activate/--no-activate")] = True,
    serving_only: Annotated[
        bool,
        typer.Option(
            "--serving-only",
            help="Do not train: build the active version's missing neighbour lists and "
            "republish the catalog snapshot.",
        ),
    ] = False,
) -> None:
    """Train the feed's next-item model on the event log into a new, versioned artifact;
    serving processes swap to it within seconds."""
    from juxing.feed.training import build_serving_artifacts
    from juxing.feed.training import train as run

    settings = get_settings()
    db = _database()
    if serving_only:
        try:
            version = build_serving_artifacts(db, settings.data_dir)
        finally:
            db.dispose()
        typer.echo(f"serving artifacts ready (model version {version or 'none'})")
        return
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} / {task.total:,.0f} events"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("reading events", total=None)

            def step(name: str, advance: int, total: int | None) -> None:
                if total is not None:
                    bar.update(task, total=total)
                bar.update(task, description=name, advance=advance)

            result = run(
                db,
                settings.data_dir,
                sources=tuple(source) if source else None,
                activate=activate,
                on_step=step,
            )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    typer.echo(
        f"model version {result.version}: {result.n_users} users, {result.n_items} items, "
        f"{result.n_events} events, {result.train_seconds:.1f} s -> {result.path}"
        + (" (active)" if activate else "")
    )
