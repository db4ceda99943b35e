"""Subscribers to the deals engine's order events, run inside the order's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from juxing.commission import service
from juxing.deals.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderReceived,
    OrderRefunded,
)
from juxing.kit.signals import subscribe, subscribe_many


@subscribe_many(OrderPlaced)
def on_orders_placed(session: Session, events: list[OrderPlaced]) -> None:
    # The buy path (one order, or a group placed together): most orders follow no click;
    # find that out for all of them in one indexed query.
    for order_id in service.orders_with_candidate_clicks(session, events):
        service.attribute_order(session, order_id=order_id)


@subscribe(OrderPaid)
def on_order_paid(session: Session, event: OrderPaid) -> None:
    service.accrue_order(session, order_id=event.order_id)


@subscribe(OrderCancelled)
def on_order_cancelled(session: Session, event: OrderCancelled) -> None:
    service.cancel_order(session, order_id=event.order_id)


@subscribe(OrderReceived)
def on_order_received(session: Session, event: OrderReceived) -> None:
    service.start_return_window(session, order_id=event.order_id)


@subscribe(OrderRefunded)
def on_order_refunded(session: Session, event: OrderRefunded) -> None:
    service.claw_back_order(session, order_id=event.order_id)
