"""The ``juxing`` command line."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from juxing.analytics.cli import analytics_app
from juxing.commission.cli import ledger_app
from juxing.config import Settings, get_settings
from juxing.feed.cli import import_app, train
from juxing.recsys.commands import register as register_recsys

app = typer.Typer(
    help="Juxing (聚星): content-commerce engine.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(ledger_app, name="ledger")
app.add_typer(import_app, name="import")
app.add_typer(analytics_app, name="analytics")
app.command("train")(train)
register_recsys(app)  # `juxing offline-recs` and `juxing eval`
console = Console()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the configured database to the latest schema."""
    from juxing.kit.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    console.print(f"database at revision {revision}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Sign-in email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    role: Annotated[
        list[str], typer.Option(help="shopper, creator, merchant, operator; repeat for several.")
    ] = ["shopper"],  # noqa: B006
) -> None:
    """Create a user (e.g. the first operator)."""
    from pydantic import TypeAdapter, ValidationError

    from juxing.accounts import service
    from juxing.accounts.schemas import Email, Password
    from juxing.kit.db import Database
    from juxing.kit.errors import JuxingError
    from juxing.models.accounts import Role

    try:
        roles = [Role(r) for r in role]
        email = TypeAdapter(Email).validate_python(email)
        TypeAdapter(Password).validate_python(password)
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = Database(get_settings().effective_database_url)
    try:
        with db.session() as session:
            user = service.create_user(
                session=session,
                email=email,
                password=password,
                display_name=name or email.split("@")[0],
                roles=roles,
            )
            console.print(f"created user {user.id} <{user.email}> roles={sorted(user.role_set)}")
    except JuxingError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (JUXING_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (JUXING_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="API processes (JUXING_WORKERS).")] = None,
) -> None:
    """Serve the API and web UI."""
    settings = get_settings()
    _serve(settings, host or settings.host, port or settings.port, workers or settings.workers)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if settings.is_sqlite:
        from juxing.kit.migrate import upgrade

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.effective_database_url)
    uvicorn.run(
        "juxing.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def worker() -> None:
    """Run the periodic background jobs (production: next to the API processes)."""
    from juxing.kit.db import Database
    from juxing.kit.logging import configure_logging
    from juxing.kit.redis import make_redis
    from juxing.worker.runner import load_jobs, run_loop

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    db = Database(settings.effective_database_url)
    redis_client = make_redis(settings.redis_url) if settings.redis_url else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(f"juxing worker: {len(load_jobs())} periodic jobs")
    run_loop(db, redis_client, stop)
    db.dispose()


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port (JUXING_PORT, default 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo's SQLite file lives (default: JUXING_DATA_DIR, else var/demo)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the demo world.")] = 7,
    serve_it: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after building.")
    ] = True,
) -> None:
    """Build a realistic demo world on the embedded default, then serve it."""
    from juxing.demo import DEMO_PASSWORD, build_demo_world

    if data_dir is not None:
        os.environ["JUXING_DATA_DIR"] = str(data_dir)
    else:
        os.environ.setdefault("JUXING_DATA_DIR", "var/demo")
    # The demo always runs on the embedded default: one SQLite file, jobs in-process.
    os.environ.pop("JUXING_DATABASE_URL", None)
    os.environ.pop("JUXING_REDIS_URL", None)
    get_settings.cache_clear()
    settings = get_settings()
    db_file = settings.data_dir / "juxing.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    logins = build_demo_world(settings, seed=seed, console=console)
    host = host or settings.host
    port = port or settings.port
    console.print("\nDemo logins (password for all: [bold]" + DEMO_PASSWORD + "[/bold]):")
    for role_name, email in logins.items():
        console.print(f"  {role_name:<9} {email}")
    if not serve_it:
        return
    # Printed plainly, on its own line, for people and scripts alike.
    print(f"Juxing is running at http://{host}:{port}/", flush=True)
    _serve(settings, host, port, 1)


@app.command()
def backup(
    file: Annotated[Path | None, typer.Argument(help="Backup file (default: dated).")] = None,
) -> None:
    """Back up the embedded SQLite database online, while the server runs."""
    from juxing.ops.cli import backup_command

    backup_command(get_settings(), file)


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `juxing backup`.")],
    force: Annotated[bool, typer.Option(help="Restore even while the database is open.")] = False,
) -> None:
    """Restore the embedded SQLite database from a backup (keeps the current one aside)."""
    from juxing.ops.cli import restore_command

    restore_command(get_settings(), file, force=force)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
