"""Plumbing tables: stored idempotent responses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from juxing.models.base import Base, IdMixin


class IdempotencyRecord(IdMixin, Base):
    """The first response to an ``Idempotency-Key``, replayed for a day."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    # Who sent it ("user:42") — keys are scoped to their sender.
    principal: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    locked_until: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
