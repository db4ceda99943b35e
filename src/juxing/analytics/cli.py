"""``juxing analytics``: backfill the dashboard rollups, recompute the audience segments."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

analytics_app = typer.Typer(help="Dashboards rollups and audience segments.", no_args_is_help=True)
console = Console()

WHEN = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def chunks(start: datetime, end: datetime, hours: int) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into pieces of ``hours`` hours (the last one shorter)."""
    step = timedelta(hours=hours)
    out, t = [], start
    while t < end:
        out.append((t, min(t + step, end)))
        t += step
    return out


@analytics_app.command("backfill")
def backfill(
    start: Annotated[datetime, typer.Option(formats=WHEN, help="First hour (UTC unless given).")],
    end: Annotated[
        datetime | None, typer.Option(formats=WHEN, help="Up to this time (default: now).")
    ] = None,
    chunk_hours: Annotated[
        int, typer.Option(min=1, max=24 * 31, help="Hours recomputed per transaction.")
    ] = 24,
    minutes: Annotated[
        bool, typer.Option("--minutes/--no-minutes", help="Also the per-minute rollups.")
    ] = True,
    rebuild_days: Annotated[
        bool, typer.Option("--rebuild-days", help="Then rebuild the days from the hours (repair).")
    ] = False,
) -> None:
    """Recompute the dashboard rollups (hours, days and minutes) over a past period.

    Idempotent: each chunk replaces its buckets in its own transaction, so an interrupted
    backfill is simply run again.
    """
    from juxing.analytics import rollups
    from juxing.config import get_settings
    from juxing.kit.db import Database
    from juxing.kit.time import utcnow

    s = rollups.floor_hour(_utc(start))
    e = _utc(end) if end else utcnow()
    if s >= e:
        raise typer.BadParameter("--start must be before --end", param_hint="--start")
    pieces = chunks(s, e, chunk_hours)
    db = Database(get_settings().effective_database_url)
    written, t0 = 0, time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]rollups[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(s.isoformat(), total=len(pieces))
            for a, b in pieces:
                progress.update(task, description=a.strftime("%Y-%m-%d %H:%M"))
                with db.session() as session:
                    written += rollups.refresh(session, start=a, end=b, minutes=minutes)
                progress.advance(task)
        if rebuild_days:
            with db.session() as session:
                rollups.refresh_days(session, start=s, end=e)
    finally:
        db.dispose()
    console.print(
        f"backfilled {s.isoformat()} .. {e.isoformat()}: {len(pieces)} chunks, "
        f"{written} rollup rows in {time.perf_counter() - t0:.1f}s"
    )


@analytics_app.command("segments")
def segments(
    k: Annotated[int, typer.Option(min=2, max=20, help="How many segments.")] = 6,
) -> None:
    """Regroup the shoppers into audience segments from the behaviour log now."""
    from juxing.analytics import service
    from juxing.config import get_settings
    from juxing.kit.db import Database

    db = Database(get_settings().effective_database_url)
    try:
        with db.session() as session:
            result = service.compute_segments(session=session, k=k)
            for seg in result.segments:
                console.print(f"{seg.key:<24} {seg.size:>8}  {seg.name}")
    finally:
        db.dispose()
