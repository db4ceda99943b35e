"""One contract suite, run against every registered recommender."""

from __future__ import annotations

import json

import numpy as np
import pytest

from juxing.recsys import (
    ArtifactError,
    Interactions,
    ItemKNNRecommender,
    Recommender,
    leave_one_out,
    load_model,
    registered_models,
)
from juxing.recsys.evaluation import hit_rate
from juxing.recsys.pipeline import make_model

SMALL_PARAMS = {
    "implicit-als": {"factors": 8, "iterations": 5},
    "transition-ease": {"tune_users": 200},
}
MODELS = sorted(registered_models())


def test_all_four_models_are_registered() -> None:
    assert {"popularity", "item-knn", "implicit-als", "transition-ease"} <= set(MODELS)


@pytest.fixture(scope="module", params=MODELS)
def fitted(request: pytest.FixtureRequest, synthetic: Interactions) -> Recommender:
    split = leave_one_out(synthetic)
    model = make_model(request.param, **SMALL_PARAMS.get(request.param, {}))
    return model.fit(split.train, (split.valid_histories, split.valid_targets))


def test_recommend_shape_order_and_no_seen_items(fitted: Recommender) -> None:
    histories = [np.array([0, 1, 2]), np.array([5]), np.array([7, 7, 8, 9, 10])]
    recs = fitted.recommend(histories, k=10)
    assert recs.items.shape == (3, 10)
    assert recs.scores.shape == (3, 10)
    for row, scores, history in zip(recs.items, recs.scores, histories, strict=True):
        assert not set(row.tolist()) & set(history.tolist())
        assert len(set(row.tolist())) == len(row)
        assert np.all(np.diff(scores) <= 0)


def test_recommend_without_exclusion_may_return_seen(fitted: Recommender) -> None:
    recs = fitted.recommend([np.arange(50)], k=60, exclude_seen=False)
    assert set(recs.items[0].tolist()) == set(range(60))


def test_k_larger_than_catalogue_pads_with_minus_one(fitted: Recommender) -> None:
    recs = fitted.recommend([np.arange(55)], k=100)
    assert recs.items.shape == (1, 60)
    valid = recs.items[0][recs.items[0] >= 0]
    assert set(valid.tolist()) == set(range(55, 60))
    assert (recs.items[0][5:] == -1).all()


def test_empty_history_gets_a_full_list(fitted: Recommender) -> None:
    recs = fitted.recommend([np.array([], dtype=np.int64)], k=5)
    assert (recs.items >= 0).all()


def test_recent_session_events_change_the_list_without_refit(fitted: Recommender) -> None:
    if fitted.name == "popularity":
        pytest.skip("popularity is the same for everyone by design")
    a = fitted.recommend([np.array([1, 2, 3])], k=10).items[0]
    b = fitted.recommend([np.array([1, 2, 3, 40, 41])], k=10).items[0]
    assert not np.array_equal(a, b)


def test_similar_items_excludes_the_item(fitted: Recommender) -> None:
    recs = fitted.similar_items(3, k=5)
    assert len(recs.items) == 5
    assert 3 not in recs.items.tolist()


def test_learns_better_than_chance(fitted: Recommender, synthetic: Interactions) -> None:
    split = leave_one_out(synthetic)
    recs = fitted.recommend(split.test_histories, k=10)
    assert hit_rate(recs.items, split.test_targets, 10) > 10 / 60


def test_save_load_roundtrip(fitted: Recommender, tmp_path) -> None:
    path = fitted.save(tmp_path / "artifact")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"] == fitted.name
    assert manifest["format_version"] == 1
    assert manifest["trained_at"]
    assert set(manifest["params"]) == set(fitted.params)
    loaded = load_model(path)
    assert type(loaded) is type(fitted)
    histories = [np.array([0, 4, 9]), np.array([12, 13])]
    np.testing.assert_array_equal(
        loaded.recommend(histories, k=8).items, fitted.recommend(histories, k=8).items
    )
    assert type(fitted).load(path).name == fitted.name
    for name, value in vars(loaded).items():  # the feed multiplies these without copying
        if isinstance(value, np.ndarray) and value.ndim == 2:
            assert value.flags.c_contiguous, name


def test_load_checks_the_model_kind(fitted: Recommender, tmp_path) -> None:
    path = fitted.save(tmp_path / "artifact")
    if fitted.name != "item-knn":
        with pytest.raises(ArtifactError):
            ItemKNNRecommender.load(path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        load_model(path)


def test_unfitted_model_refuses_to_recommend() -> None:
    for name in MODELS:
        with pytest.raises(RuntimeError):
            make_model(name).recommend([np.array([1])], k=3)


def test_unknown_parameter_is_rejected() -> None:
    with pytest.raises(TypeError):
        make_model("item-knn", neighbours=3)


def test_item_ids_are_kept_in_the_artifact(tmp_path) -> None:
    data = Interactions.from_sequences(
        [[0, 1, 2], [1, 2, 0], [2, 0, 1]], item_ids=np.array(["a", "b", "c"])
    )
    model = make_model("popularity").fit(data)
    loaded = load_model(model.save(tmp_path / "pop"))
    assert loaded.item_ids is not None
    assert loaded.item_ids.tolist() == ["a", "b", "c"]


def test_item_attributes_are_used_and_saved(synthetic: Interactions, tmp_path) -> None:
    import dataclasses

    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    attrs = sp.csr_matrix(
        (np.ones(120, dtype=np.float32), (np.repeat(np.arange(60), 2), rng.integers(0, 8, 120))),
        shape=(60, 8),
    )
    data = dataclasses.replace(synthetic, item_attributes=attrs)
    split = leave_one_out(data)
    model = make_model("transition-ease", attr_weight=0.5, tune=False).fit(split.train)
    assert model.attributes is not None
    with_attrs = model.recommend(split.test_histories[:20], k=5).items
    loaded = load_model(model.save(tmp_path / "te"))
    np.testing.assert_array_equal(
        loaded.recommend(split.test_histories[:20], k=5).items, with_attrs
    )
    plain = make_model("transition-ease", attr_weight=0.5, tune=False).fit(
        leave_one_out(synthetic).train
    )
    assert plain.attributes is None
    assert not np.array_equal(plain.recommend(split.test_histories[:20], k=5).items, with_attrs)
