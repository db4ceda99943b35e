"""The offline paths shared by the CLI and the benchmark: evaluate the protocol, batch-recommend."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from juxing.recsys.base import Recommender, registered_models
from juxing.recsys.data import Interactions, leave_one_out
from juxing.recsys.evaluation import EvalReport, Reranker, evaluate, long_tail_mask
from juxing.recsys.policy import POLICIES, apply_policy

DEFAULT_MODEL = "transition-ease"
BASELINES = ("popularity", "item-knn", "implicit-als")
PROTOCOLS = ("refit", "strict")
Step = Callable[[str], None]


def make_model(name: str, **params: Any) -> Recommender:
    try:
        return registered_models()[name](**params)
    except KeyError as exc:
        known = ", ".join(sorted(registered_models()))
        raise ValueError(f"unknown model {name!r} (known: {known})") from exc


def evaluate_protocol(
    data: Interactions,
    ks: Sequence[int] = (10, 20),
    *,
    models: Sequence[str] = (DEFAULT_MODEL, *BASELINES),
    policy: str | None = "longtail",
    candidates: int = 200,
    protocol: str = "refit",
    on_step: Step | None = None,
) -> list[EvalReport]:
    """Leave-one-out full-ranking evaluation of each model, with the policy off (and on).

    ``protocol`` (the same for every model; ``"both"`` evaluates the two):

    * ``"refit"`` (default): the model is trained on every sequence minus only its last item
      (everything before the test target, the validation item included) and ranks the test
      target; its hyperparameters are chosen on the validation target (second-to-last item),
      held out: ``fit(..., hold_out_last=True)`` (our model: exact leave-one-out from the one
      fit; other tuned models: a tuning fit without the validation items, then the refit). The
      reported training time covers all of it.
    * ``"strict"``: the model trained on all-but-the-last-two items (and tuned on the validation
      target) ranks the test target directly; the validation item is only an input event. This is
      the training regime of the published S3-Rec / SASRec code.
    """
    wanted = list(PROTOCOLS) if protocol == "both" else [protocol]
    if any(p not in PROTOCOLS for p in wanted):
        known = ", ".join((*PROTOCOLS, "both"))
        raise ValueError(f"unknown protocol {protocol!r} (known: {known})")
    if policy and policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    strict = leave_one_out(data)
    validation = (strict.valid_histories, strict.valid_targets)
    splits = {"strict": strict}
    if "refit" in wanted:
        splits["refit"] = replace(strict, train=refit_train(data))
    reports: list[EvalReport] = []
    for name in models:
        for proto in wanted:
            if proto == "strict":
                if on_step:
                    on_step(f"training {name} on all but the last two items")
                model = make_model(name).fit(strict.train, validation)
            else:
                if on_step:
                    on_step(f"training {name} on all but the last item (tuned on the one before)")
                model = make_model(name).fit(splits["refit"].train, hold_out_last=True)
            if on_step:
                on_step(f"evaluating {name} ({proto})")
            split = splits[proto]
            rerankers = _rerankers(policy, long_tail_mask(split.train.item_counts()))
            for report in evaluate(model, split, ks, rerankers=rerankers, candidates=candidates):
                report.protocol = proto
                reports.append(report)
    return reports


def _rerankers(policy: str | None, tail: np.ndarray) -> dict[str, Reranker]:
    if not policy:
        return {}

    def rerank(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        return apply_policy(items, scores, k, tail, policy)[0]

    return {policy: rerank}


def refit_train(data: Interactions) -> Interactions:
    """Everything before each user's test target: every sequence minus its last item.

    Users with fewer than three items are not evaluated and keep all their items (as in
    ``leave_one_out``).
    """
    lengths = data.lengths()
    train = data.truncate(1)
    if (lengths < 3).any():
        seqs = [
            data.history(u) if lengths[u] < 3 else train.history(u) for u in range(data.n_users)
        ]
        train = Interactions.from_sequences(
            seqs,
            data.n_items,
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            item_attributes=data.item_attributes,
        )
    return train


@dataclass(frozen=True)
class UserRecs:
    user: str
    items: list[str]


def fit_for_serving(data: Interactions, name: str = DEFAULT_MODEL) -> Recommender:
    """Fit on all data; a tuned model first picks its settings on each user's last item."""
    return make_model(name).fit(data, hold_out_last=True)


def batch_recommend(
    model: Recommender,
    data: Interactions,
    k: int,
    *,
    policy: str | None = None,
    candidates: int = 200,
    batch_users: int = 2048,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[UserRecs]:
    """K best next items for every user of ``data`` (never one of their items), best first.

    With a policy, candidates of all users are collected first and re-ranked together.
    """
    histories = data.histories()
    item_ids = data.item_ids if data.item_ids is not None else np.arange(data.n_items).astype(str)
    user_ids = data.user_ids if data.user_ids is not None else np.arange(data.n_users).astype(str)
    n_cand = max(k, candidates) if policy else k
    row_budget = max(1, int(2e8 // max(model.n_items, 1)))
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, data.n_users, batch_users):
        recs = model.recommend(
            histories[start : start + batch_users], n_cand, batch_size=min(512, row_budget)
        )
        if policy:
            chunks.append((recs.items, recs.scores))
        else:
            yield from _rows(user_ids, item_ids, start, recs.items)
        if on_batch:
            on_batch(len(recs.items))
    if policy:
        items = np.concatenate([c[0] for c in chunks])
        scores = np.concatenate([c[1] for c in chunks])
        chosen, _ = apply_policy(items, scores, k, long_tail_mask(data.item_counts()), policy)
        yield from _rows(user_ids, item_ids, 0, chosen)


def _rows(
    user_ids: np.ndarray, item_ids: np.ndarray, start: int, items: np.ndarray
) -> Iterator[UserRecs]:
    for offset, row in enumerate(items):
        yield UserRecs(str(user_ids[start + offset]), [str(item_ids[i]) for i in row if i >= 0])
