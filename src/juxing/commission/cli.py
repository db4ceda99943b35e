"""``juxing ledger check``: reconcile on demand (exit code 1 when anything is off)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
console = Console()


@ledger_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Prove the ledger: balanced transactions, zero sum, balances = entries, every paid
    attributed line accrued, every refund reversed, every payout posted."""
    from juxing.commission.reconcile import run_reconciliation
    from juxing.config import get_settings
    from juxing.kit.db import Database

    db = Database(get_settings().effective_database_url)
    t0 = time.perf_counter()
    try:
        with db.session() as session:
            run, found = run_reconciliation(session, trigger="cli")
            run_id, entries = run.id, run.checked_entries
    finally:
        db.dispose()
    seconds = time.perf_counter() - t0
    if as_json:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "ok": not found,
                    "checked_entries": entries,
                    "seconds": round(seconds, 3),
                    "discrepancies": [d.as_dict() for d in found],
                }
            )
        )
    else:
        if found:
            table = Table("check", "subject", "details", title="Ledger discrepancies")
            for d in found:
                table.add_row(d.check, d.subject, json.dumps(d.details))
            console.print(table)
        console.print(
            f"run {run_id}: {entries} entries checked in {seconds:.2f}s, {len(found)} discrepancies"
        )
    if found:
        raise typer.Exit(1)


@ledger_app.command("balances")
def balances(
    kind: Annotated[str | None, typer.Option(help="Only this account kind.")] = None,
) -> None:
    """List account balances."""
    from sqlalchemy import select

    from juxing.config import get_settings
    from juxing.kit.db import Database
    from juxing.models.ledger import LedgerAccount

    db = Database(get_settings().effective_database_url)
    try:
        with db.session(write=False) as session:
            stmt = select(LedgerAccount).order_by(LedgerAccount.code)
            if kind:
                stmt = stmt.where(LedgerAccount.kind == kind)
            table = Table("account", "balance (minor)")
            for acc in session.scalars(stmt):
                table.add_row(acc.code, str(acc.balance_minor))
            console.print(table)
    finally:
        db.dispose()
