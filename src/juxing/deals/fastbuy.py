"""The buy endpoint's fast path (kit/fastroute.py): not installed yet."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Nothing to install yet."""
