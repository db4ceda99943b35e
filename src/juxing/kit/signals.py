"""In-process domain events, delivered inside the publisher's unit of work.

A domain publishes a plain dataclass (``OrderPaid(order_id=...)``); subscribers in other
domains react in the same transaction, so e.g. commission entries commit together with the
payment that caused them, or not at all. This is not a queue: handlers run synchronously.

    # commission/handlers.py
    @subscribe(OrderPaid)
    def post_commission(session: Session, event: OrderPaid) -> None: ...

Modules holding subscribers are listed in ``SUBSCRIBER_MODULES`` and imported on first
publish.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

E = TypeVar("E")
Handler = Callable[[Session, Any], None]

SUBSCRIBER_MODULES: tuple[str, ...] = (
    "juxing.commission.handlers",  # issue 6: commission
    "juxing.feed.handlers",  # issue 5: feed
)

_handlers: dict[type, list[Handler]] = defaultdict(list)
# Subscribers that take a list of events at once (``subscribe_many``).
_many_handlers: dict[type, list[Callable[[Session, list[Any]], None]]] = defaultdict(list)
_loaded = False


def subscribe(
    event_type: type[E],
) -> Callable[[Callable[[Session, E], None]], Callable[[Session, E], None]]:
    def register(fn: Callable[[Session, E], None]) -> Callable[[Session, E], None]:
        if fn not in _handlers[event_type]:
            _handlers[event_type].append(fn)
        return fn

    return register


def subscribe_many(
    event_type: type[E],
) -> Callable[[Callable[[Session, list[E]], None]], Callable[[Session, list[E]], None]]:
    """Like ``subscribe``, for a handler that takes a list of events (one query for many);
    ``publish`` hands it a list of one."""

    def register(fn: Callable[[Session, list[E]], None]) -> Callable[[Session, list[E]], None]:
        if fn not in _many_handlers[event_type]:
            _many_handlers[event_type].append(fn)
        return fn

    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in SUBSCRIBER_MODULES:
            importlib.import_module(module)
        _loaded = True


def publish(session: Session, event: object) -> None:
    """Deliver ``event`` to every subscriber, in the caller's transaction."""
    publish_many(session, [event])


def publish_many(session: Session, events: list[Any]) -> None:
    """Deliver events of one type to every subscriber, in the caller's transaction, in
    order (a ``subscribe_many`` handler gets them all in one call)."""
    _load()
    if not events:
        return
    kind = type(events[0])
    for many in list(_many_handlers.get(kind, ())):
        many(session, events)
    for handler in list(_handlers.get(kind, ())):
        for event in events:
            handler(session, event)
