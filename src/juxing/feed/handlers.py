"""The feed listens to other domains: a paid order is a ``buy`` event, a follow a ``follow``.

Handlers run in the publisher's transaction (``kit.signals``) and write idempotently (the
client event id is derived from the source object), so a replayed signal stores nothing twice.
A follow or an unfollow also drops the shopper's kept feed (``pages.py``) in this process, at
once and again after the commit (other processes see a follow's event; an unfollow, or a
second follow of the same target, which stores no new event, reaches them when their kept
feed expires, within ``pages.PAGE_TTL_S``).
"""

from __future__ import annotations

from sqlalchemy import event as orm_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing.content.events import Followed, Unfollowed
from juxing.deals.events import OrderPaid
from juxing.feed import service
from juxing.kit.signals import subscribe
from juxing.models.orders import Order, OrderLine


@subscribe(OrderPaid)
def order_paid_is_a_buy(session: Session, event: OrderPaid) -> None:
    """One ``buy`` event per product of the paid order."""
    shopper_id = session.scalar(select(Order.shopper_id).where(Order.id == event.order_id))
    if shopper_id is None:
        return
    products = session.scalars(
        select(OrderLine.product_id).where(OrderLine.order_id == event.order_id).distinct()
    )
    for product_id in products:
        service.record_event(
            session=session,
            user_id=shopper_id,
            action="buy",
            target_type="product",
            target_id=product_id,
            client_event_id=f"order:{event.order_id}:{product_id}",
        )


@subscribe(Followed)
def followed_is_a_follow(session: Session, event: Followed) -> None:
    """A ``follow`` event on the creator or merchant."""
    service.record_event(
        session=session,
        user_id=event.follower_id,
        action="follow",
        target_type=event.target_kind,
        target_id=event.target_id,
        client_event_id=f"follow:{event.target_kind}:{event.target_id}",
    )
    _forget_kept_feed(session, event.follower_id)


@subscribe(Unfollowed)
def unfollowed_drops_the_kept_feed(session: Session, event: Unfollowed) -> None:
    """The shopper's kept feed still has the unfollowed creator's or shop's items."""
    _forget_kept_feed(session, event.follower_id)


def _forget_kept_feed(session: Session, user_id: int) -> None:
    from juxing.feed.engine import forget_shopper

    forget_shopper(user_id)
    # Again once committed: a feed ranked meanwhile from the old follows is not kept.
    orm_event.listen(session, "after_commit", lambda _s: forget_shopper(user_id), once=True)
