"""Metrics on tiny hand-checked cases, and the leave-one-out split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from juxing.recsys.data import Interactions, histories_to_csr, leave_one_out
from juxing.recsys.evaluation import (
    aplt,
    coverage,
    exposure,
    gini,
    hit_rate,
    list_metrics,
    long_tail_mask,
    ndcg,
)

LISTS = np.array([[3, 1, 2], [0, 4, -1], [2, 3, 4]])
TARGETS = np.array([1, 9, 2])


def test_hit_rate_and_ndcg_by_hand() -> None:
    assert hit_rate(LISTS, TARGETS, 1) == pytest.approx(1 / 3)  # row 3 hits at position 1
    assert hit_rate(LISTS, TARGETS, 3) == pytest.approx(2 / 3)
    # row 1: position 2 -> 1/log2(3); row 3: position 1 -> 1
    assert ndcg(LISTS, TARGETS, 3) == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert ndcg(LISTS, TARGETS, 1) == pytest.approx(1 / 3)


def test_exposure_coverage_aplt() -> None:
    assert exposure(LISTS, 6).tolist() == [1, 1, 2, 2, 2, 0]
    assert coverage(LISTS, 6) == pytest.approx(5 / 6)
    tail = np.array([False, False, True, True, True, True])
    # per list: 2/3, 1/2 (the empty slot does not count), 3/3
    assert aplt(LISTS, tail) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_gini_extremes_and_a_known_value() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)  # (n-1)/n for one winner
    assert gini(np.array([1, 2, 3])) == pytest.approx(2 / 9)
    assert gini(np.zeros(3)) == 0.0


def test_long_tail_is_all_but_the_top_fifth() -> None:
    counts = np.array([50, 1, 2, 40, 3, 4, 5, 6, 7, 8])
    tail = long_tail_mask(counts)
    assert np.flatnonzero(~tail).tolist() == [0, 3]


def test_list_metrics_keys() -> None:
    out = list_metrics(LISTS, TARGETS, [1, 3], 6, np.ones(6, dtype=bool))
    assert set(out) == {"HR@1", "NDCG@1", "HR@3", "NDCG@3", "coverage", "APLT", "Gini"}


def test_leave_one_out_split() -> None:
    data = Interactions.from_sequences([[0, 1, 2, 3], [4, 5], [1, 2, 5]], n_items=6)
    split = leave_one_out(data)
    assert split.eval_users.tolist() == [0, 2]
    assert split.train.history(0).tolist() == [0, 1]
    assert split.train.history(1).tolist() == [4, 5]  # too short to evaluate: all in train
    assert split.train.history(2).tolist() == [1]
    assert split.valid_targets.tolist() == [2, 2]
    assert split.test_targets.tolist() == [3, 5]
    assert [h.tolist() for h in split.test_histories] == [[0, 1, 2], [1, 2]]
    assert [h.tolist() for h in split.valid_histories] == [[0, 1], [1]]


def test_history_weights_decay_with_age_and_keep_the_latest_repeat() -> None:
    m = histories_to_csr([np.array([2, 0, 2, 1])], 3, decay=0.5).toarray()[0]
    assert m.tolist() == pytest.approx([0.25, 1.0, 0.5])
    m = histories_to_csr([np.array([2, 0, 1])], 3, decay=0.5, max_len=2).toarray()[0]
    assert m.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_refit_protocol_trains_on_all_but_the_last_item() -> None:
    from juxing.recsys.pipeline import evaluate_protocol, refit_train

    data = Interactions.from_sequences([[0, 1, 2, 3], [4, 5], [1, 2, 4, 5, 0]], n_items=6)
    train = refit_train(data)
    assert [list(h) for h in train.histories()] == [[0, 1, 2], [4, 5], [1, 2, 4, 5]]
    strict = leave_one_out(data).train
    assert [list(h) for h in strict.histories()] == [[0, 1], [4, 5], [1, 2, 4]]
    reports = evaluate_protocol(data, (3,), models=("popularity",), policy=None)
    assert [(r.protocol, r.policy) for r in reports] == [("refit", "off")]
    both = evaluate_protocol(data, (3,), models=("popularity", "transition-ease"), policy=None)
    assert [(r.model, r.protocol) for r in both][:1] == [("popularity", "refit")]
    both = evaluate_protocol(data, (3,), models=("transition-ease",), protocol="both")
    assert {(r.protocol, r.policy) for r in both} == {
        (p, q) for p in ("refit", "strict") for q in ("off", "longtail")
    }
    refit, strict = both[0], both[2]
    assert (refit.protocol, strict.protocol) == ("refit", "strict")
    assert refit.train_s > 0 and strict.train_s > 0  # each protocol's own fit (tuning included)
    with pytest.raises(ValueError, match="protocol"):
        evaluate_protocol(data, (3,), models=("popularity",), protocol="leaky")
