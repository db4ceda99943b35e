"""The default model's one-factorisation tuning: exact leave-one-out, and the fit it leads to."""

from __future__ import annotations

import numpy as np
import pytest

from juxing.recsys.data import Interactions
from juxing.recsys.pipeline import make_model
from juxing.recsys.sequential import (
    TransitionEASERecommender,
    _spd_inverse,
    _transpose_in_place,
    _without,
)

from .conftest import synthetic_sequences


@pytest.fixture(scope="module")
def data() -> Interactions:
    return Interactions.from_sequences(
        synthetic_sequences(n_users=200, n_items=40, seed=2), n_items=40
    )


@pytest.mark.parametrize("ridge_l2", [None, 30.0])
def test_held_out_parts_equal_a_model_trained_without_that_item(
    data: Interactions, ridge_l2: float | None
) -> None:
    params = {"min_ease_count": 1, "ridge_l2": ridge_l2, "l2": 20.0}
    model = TransitionEASERecommender(**params)
    model.n_items = data.n_items
    model._fit_state(data, keep_precision=True)
    users = np.array([0, 3, 7, 11, 50, 199])
    parts = model._held_out_parts(data, users)
    for row, user in enumerate(users):
        drop = np.zeros(data.n_interactions, dtype=bool)
        drop[data.indptr[user + 1] - 1] = True
        brute = TransitionEASERecommender(**params)
        brute.n_items = data.n_items
        brute._fit_state(_without(data, drop))
        assert np.array_equal(brute.ease_items, model.ease_items)
        history = [data.history(int(user))[:-1]]
        for decay, ease in parts.ease.items():
            np.testing.assert_allclose(ease[row], brute._ease_part(history, decay)[0], atol=1e-4)
        np.testing.assert_allclose(parts.ridge[row], brute._ridge_part(history)[0], atol=1e-4)
        # the model fitted on everything scores the held-out item differently (it learned it)
        assert not np.allclose(parts.ridge[row], model._ridge_part(history)[0], atol=1e-4)


def test_hold_out_last_tunes_then_keeps_the_fit_on_all_data(data: Interactions) -> None:
    tuned = make_model("transition-ease", tune_users=100).fit(data, hold_out_last=True)
    plain = make_model("transition-ease", **{**tuned.params, "tune": False}).fit(data)
    for name in ("ease", "ridge", "popularity"):
        np.testing.assert_allclose(getattr(tuned, name), getattr(plain, name), atol=1e-6)
    histories = [data.history(u) for u in range(20)]
    np.testing.assert_array_equal(
        tuned.recommend(histories, k=5).items, plain.recommend(histories, k=5).items
    )
    assert tuned._precision is None and tuned._design is None  # nothing large kept
    for name in ("ease", "ridge"):  # sparse @ dense would copy a Fortran-ordered operand
        assert getattr(tuned, name).flags.c_contiguous


def test_hold_out_last_on_a_model_without_tuning_is_a_plain_fit(data: Interactions) -> None:
    held = make_model("item-knn").fit(data, hold_out_last=True)
    plain = make_model("item-knn").fit(data)
    histories = [data.history(u) for u in range(20)]
    np.testing.assert_array_equal(
        held.recommend(histories, k=5).items, plain.recommend(histories, k=5).items
    )


def test_spd_inverse_in_place_is_the_inverse() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 5, 1030, 2100):  # below, across and beyond one mirrored block
        x = rng.random((n + 3, n), dtype=np.float32)
        a = (x.T @ x + n * np.eye(n, dtype=np.float32)).astype(np.float32)  # well conditioned
        for given in (
            np.array(a, order="C"),
            np.array(a, order="F"),
        ):  # sparse products give either order
            inv = _spd_inverse(given)
            assert inv.flags.c_contiguous
            assert np.shares_memory(inv, given)  # no n x n copy
            np.testing.assert_allclose(inv, inv.T, atol=0)
            np.testing.assert_allclose(inv @ a, np.eye(n), atol=2e-3)


def test_transpose_in_place() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 7, 512, 1300):
        a = rng.random((n, n), dtype=np.float32)
        expected = a.T.copy()
        out = _transpose_in_place(a)
        assert out is a
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("ridge_l2", [None, 10.0])
def test_hold_out_last_without_any_dense_item(ridge_l2: float | None) -> None:
    data = Interactions.from_sequences([[0, 1, 2], [1, 2, 3], [2, 3, 4, 0], [4]], n_items=6)
    model = make_model("transition-ease", min_ease_count=100, ridge_l2=ridge_l2)
    model.fit(data, hold_out_last=True)
    assert model.ease.shape == (0, 0)
    items = model.recommend([np.array([0, 1])], k=3).items[0]
    assert items[0] == 2  # transitions still carry the list: 1 -> 2
