"""The ``juxing backup`` and ``juxing restore`` commands (registered in ``juxing.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from juxing.config import Settings
from juxing.ops.backup import BackupError, BackupResult, default_backup_name, restore
from juxing.ops.backup import backup as run_backup

console = Console()


def _report(verb: str, result: BackupResult) -> None:
    rows = sum(result.tables.values())
    console.print(
        f"{verb} {result.path} ({result.bytes:,} bytes, {len(result.tables)} tables, {rows:,} rows)"
    )


def backup_command(settings: Settings, file: Path | None) -> None:
    """Write an online backup; exit 1 with the reason when it cannot."""
    target = file or Path(default_backup_name())
    try:
        result = run_backup(database_url=settings.effective_database_url, target=target)
    except BackupError as exc:
        console.print(f"[red]backup failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    _report("backed up to", result)


def restore_command(settings: Settings, file: Path, *, force: bool) -> None:
    """Restore a backup; exit 1 with the reason when it cannot."""
    try:
        result = restore(database_url=settings.effective_database_url, source=file, force=force)
    except BackupError as exc:
        console.print(f"[red]restore refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    if result.kept is not None:
        console.print(f"the previous database was kept as {result.kept}")
    _report("restored", result)
