"""Synthetic interaction data for the recsys tests (small, seeded, with sequential structure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from juxing.recsys.data import Interactions

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def synthetic_sequences(
    n_users: int = 300, n_items: int = 60, seed: int = 0, min_len: int = 4, max_len: int = 12
) -> list[list[int]]:
    """Users walk a sparse item graph (each item has 3 likely successors) with a popularity skew."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, n_items, size=(n_items, 3))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    seqs = []
    for _ in range(n_users):
        length = int(rng.integers(min_len, max_len + 1))
        seq = [int(rng.choice(n_items, p=popularity))]
        while len(seq) < length:
            if rng.random() < 0.8:
                nxt = int(successors[seq[-1], rng.integers(0, 3)])
            else:
                nxt = int(rng.choice(n_items, p=popularity))
            if nxt not in seq:
                seq.append(nxt)
            elif rng.random() < 0.3:
                seq.append(int(rng.choice(n_items, p=popularity)))
        seqs.append(seq)
    return seqs


@pytest.fixture(scope="session")
def synthetic() -> Interactions:
    return Interactions.from_sequences(synthetic_sequences(), n_items=60)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (see docs/recsys.md)")
    return SHARED_DATA
