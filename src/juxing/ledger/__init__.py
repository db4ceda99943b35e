"""A small double-entry ledger (accounts, balanced immutable transactions, reconciliation).

Used by commission (creator earnings, merchant charges, payouts) and by the marketplace's
escrow. The public surface::

    from juxing.ledger import Leg, account, post, check_ledger
"""

from juxing.ledger.reconcile import Discrepancy, check_ledger
from juxing.ledger.service import (
    InsufficientBalance,
    Leg,
    UnbalancedTransaction,
    account,
    balance,
    post,
)

__all__ = [
    "Discrepancy",
    "InsufficientBalance",
    "Leg",
    "UnbalancedTransaction",
    "account",
    "balance",
    "check_ledger",
    "post",
]
