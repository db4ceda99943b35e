"""Interaction data: time-ordered item sequences per user, as flat numpy arrays.

Items and users are dense integer indices (``0 .. n_items-1``); the original ids, when known,
are kept in ``item_ids`` / ``user_ids`` so results can be written back in the source's own ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

History = Sequence[int] | np.ndarray


@dataclass(frozen=True)
class Interactions:
    """Per-user item sequences in time order (CSR layout: ``items[indptr[u]:indptr[u+1]]``)."""

    indptr: np.ndarray
    items: np.ndarray
    n_items: int
    timestamps: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    item_attributes: sp.csr_matrix | None = None  # optional side information, items x attributes

    def __post_init__(self) -> None:
        if self.indptr.ndim != 1 or self.indptr[0] != 0 or self.indptr[-1] != len(self.items):
            raise ValueError("indptr does not describe items")
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError("item index out of range")
        if self.timestamps is not None and len(self.timestamps) != len(self.items):
            raise ValueError("timestamps and items differ in length")

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def history(self, user: int) -> np.ndarray:
        """The time-ordered item indices of one user."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def histories(self) -> list[np.ndarray]:
        """All users' histories (views into ``items``, no copy)."""
        return np.split(self.items, self.indptr[1:-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def user_index(self) -> np.ndarray:
        """The user index of every interaction (same length as ``items``)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths())

    def to_csr(self, binary: bool = True) -> sp.csr_matrix:
        """Users x items matrix (1 where the user interacted, or interaction counts)."""
        data = np.ones(len(self.items), dtype=np.float32)
        m = sp.csr_matrix(
            (data, (self.user_index(), self.items)), shape=(self.n_users, self.n_items)
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[History],
        n_items: int | None = None,
        *,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
        item_attributes: sp.csr_matrix | None = None,
    ) -> Interactions:
        """Build from a list of item-index sequences (one per user, oldest first)."""
        seqs = [np.asarray(s, dtype=np.int32) for s in sequences]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        items = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int32)
        if n_items is None:
            n_items = int(items.max()) + 1 if len(items) else 0
        return cls(
            indptr, items.astype(np.int32), n_items, None, user_ids, item_ids, item_attributes
        )

    def truncate(self, drop_last: int) -> Interactions:
        """Drop each user's last ``drop_last`` items (users keep at least one item)."""
        lengths = self.lengths()
        keep = np.maximum(lengths - drop_last, np.minimum(lengths, 1))
        mask = np.arange(len(self.items)) - np.repeat(self.indptr[:-1], lengths) < np.repeat(
            keep, lengths
        )
        indptr = np.zeros_like(self.indptr)
        np.cumsum(keep, out=indptr[1:])
        ts = self.timestamps[mask] if self.timestamps is not None else None
        return Interactions(
            indptr,
            self.items[mask],
            self.n_items,
            ts,
            self.user_ids,
            self.item_ids,
            self.item_attributes,
        )


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """The standard protocol: last item = test target, second-to-last = validation target.

    ``train`` holds every user's items except the last two; users with fewer than three items keep
    what they have in ``train`` and are not evaluated (``eval_users`` lists those that are).
    """

    train: Interactions
    eval_users: np.ndarray
    valid_histories: list[np.ndarray]
    valid_targets: np.ndarray
    test_histories: list[np.ndarray]
    test_targets: np.ndarray


def leave_one_out(data: Interactions) -> LeaveOneOutSplit:
    """Split every user's sequence into train / validation target / test target."""
    lengths = data.lengths()
    eval_users = np.flatnonzero(lengths >= 3)
    train = data.truncate(2)
    # users with < 3 items keep everything in train
    short = lengths < 3
    if short.any():
        seqs = [data.history(u) if short[u] else train.history(u) for u in range(data.n_users)]
        train = Interactions.from_sequences(
            seqs,
            data.n_items,
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            item_attributes=data.item_attributes,
        )
    hists = [data.history(int(u)) for u in eval_users]
    return LeaveOneOutSplit(
        train=train,
        eval_users=eval_users,
        valid_histories=[h[:-2] for h in hists],
        valid_targets=np.array([h[-2] for h in hists], dtype=np.int64),
        test_histories=[h[:-1] for h in hists],
        test_targets=np.array([h[-1] for h in hists], dtype=np.int64),
    )


def histories_to_csr(
    histories: Sequence[History], n_items: int, decay: float = 1.0, max_len: int | None = None
) -> sp.csr_matrix:
    """Rows = histories, weight of an item = ``decay ** age`` (age 0 = most recent event).

    Items seen several times keep their most recent (largest) weight.
    """
    lens = np.array([len(h) for h in histories], dtype=np.int64)
    if max_len is not None:
        lens = np.minimum(lens, max_len)
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    total = int(indptr[-1])
    cols = np.empty(total, dtype=np.int64)
    for r, h in enumerate(histories):
        n = lens[r]
        if n:
            cols[indptr[r] : indptr[r + 1]] = np.asarray(h)[len(h) - n :]
    ages = (np.repeat(indptr[1:], lens) - 1 - np.arange(total)).astype(np.float32)
    vals = np.power(np.float32(decay), ages, dtype=np.float32)
    rows = np.repeat(np.arange(len(histories)), lens)
    m = sp.coo_matrix((vals, (rows, cols)), shape=(len(histories), n_items)).tocsr()
    if m.nnz != total:  # repeated items: keep the max weight instead of the sum
        m2 = sp.coo_matrix((vals, (rows, cols)), shape=(len(histories), n_items))
        order = np.lexsort((-m2.data, m2.col, m2.row))
        r, c, v = m2.row[order], m2.col[order], m2.data[order]
        first = np.ones(len(r), dtype=bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        m = sp.csr_matrix((v[first], (r[first], c[first])), shape=(len(histories), n_items))
    return m
