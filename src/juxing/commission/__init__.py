"""Creator commission (淘宝联盟-style CPS): tracking links, attribution, rules, the ledger
postings of pending/available commission, clawbacks, fraud holds, payouts and statements.

For the content domain: ``link_for(session=..., secret_key=..., creator_id=...,
target_type="product", target_id=product_id, post_id=post_id)`` makes (or returns) the
tracking link behind a product card in a creator's post; ``link_url(link, base_url)`` is its
short URL.
"""

from juxing.commission.links import link_for, link_url

__all__ = ["link_for", "link_url"]
