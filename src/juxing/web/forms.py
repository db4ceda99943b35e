"""Turning form text into the values services take (money, times); no business rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from juxing.kit.errors import Unprocessable


def money_minor(text: str, *, field: str) -> int:
    """'12.90' (yuan) -> 1290 minor units; a clear 422 with the field name otherwise."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise Unprocessable(
            f"{field}: enter an amount such as 12.90.",
            code="invalid_amount",
            details={"field": f"form.{field}"},
        ) from exc
    if value < 0 or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Unprocessable(
            f"{field}: enter a positive amount with at most two decimals.",
            code="invalid_amount",
            details={"field": f"form.{field}"},
        )
    return int(value * 100)


def utc_datetime(text: str, *, field: str) -> datetime:
    """A ``datetime-local`` value, read as UTC (the forms say so)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise Unprocessable(
            f"{field}: enter a date and time.",
            code="invalid_datetime",
            details={"field": f"form.{field}"},
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_input(value: datetime | None, *, round_up: bool = False) -> str:
    """A UTC datetime as a ``datetime-local`` input value (minutes; ``round_up`` so that a
    default start is never before the festival's own start)."""
    if value is None:
        return ""
    value = value.astimezone(UTC)
    if round_up and (value.second or value.microsecond):
        value = value.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return value.strftime("%Y-%m-%dT%H:%M")
