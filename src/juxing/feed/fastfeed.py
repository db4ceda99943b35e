"""The home feed's fast path (kit/fastroute.py): not installed yet; GET /api/v1/feed is
answered by its regular route."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Nothing to install yet."""
