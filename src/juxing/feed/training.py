"""``juxing train``: fit the next-item model on the event log into a versioned artifact.

Each run writes ``<data_dir>/models/<version>/next-item/`` (the recsys artifact format) and a
``feed_model_versions`` row, and makes it the active version: every serving process notices
within a couple of seconds and swaps it in, without a restart. Older versions stay on disk
and can be re-activated (``POST /api/v1/feed/models/{version}/activate``). Next to the model,
a run precomputes the per-item neighbour lists serving reads (``neighbours.py``), and it
republishes the catalog snapshot.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update

from juxing.feed.catalog import write_snapshot
from juxing.feed.engine import MODEL_DIR
from juxing.feed.neighbours import BATCH, build_neighbours, load_neighbours, save_neighbours
from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.models.events import BehaviorEvent
from juxing.models.feed import FeedModelVersion
from juxing.recsys.base import Recommender, load_model
from juxing.recsys.data import Interactions
from juxing.recsys.pipeline import DEFAULT_MODEL, make_model

# EASE is a dense items x items matrix: serving restricts it to the most frequent items.
# Tuning scores every item for each sampled user (dense): few users keep memory bounded.
SERVING_PARAMS = {"max_ease_items": 4000, "tune_users": 500}
Step = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class TrainResult:
    version: str
    path: Path
    n_users: int
    n_items: int
    n_events: int
    train_seconds: float


def read_sequences(
    db: Database,
    *,
    sources: tuple[str, ...] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Interactions:
    """Every user's product and post events, in time order, as item sequences.

    Items are named ``product:ID`` / ``post:ID``; repeats of the same item in a row collapse.
    """
    t = BehaviorEvent.__table__
    stmt = select(t.c.source, t.c.user_id, t.c.target_type, t.c.target_id, t.c.occurred_at).where(
        t.c.target_type.in_(("product", "post"))
    )
    if sources:
        stmt = stmt.where(t.c.source.in_(sources))
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    with db.session(write=False) as session:
        result = session.execute(stmt.execution_options(yield_per=20000))
        for part in result.partitions():
            for source, user, ttype, tid, at in part:
                users.append(f"{source}:{user}")
                items.append(f"{ttype}:{tid}")
                times.append(at.timestamp())
            if on_rows is not None:
                on_rows(len(part))
    if not items:
        return Interactions.from_sequences([], 0)
    user_ids, user_idx = np.unique(np.array(users), return_inverse=True)
    item_ids, item_idx = np.unique(np.array(items), return_inverse=True)
    ts = np.array(times)
    order = np.lexsort((ts, user_idx))
    u, it = user_idx[order], item_idx[order]
    keep = np.ones(len(u), dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (it[1:] != it[:-1])
    u, it = u[keep], it[keep]
    counts = np.bincount(u, minlength=len(user_ids))
    indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Interactions(
        indptr, it.astype(np.int32), len(item_ids), None, user_ids.astype(str), item_ids.astype(str)
    )


def fit_next_item(data: Interactions) -> Recommender:
    """The default next-item model, its blend chosen on each user's last item (held out),
    trained on everything: one fit (``hold_out_last``)."""
    params = dict(SERVING_PARAMS)
    if (data.lengths() >= 3).sum() >= 20:
        return make_model(DEFAULT_MODEL, **params).fit(data, hold_out_last=True)
    params["tune"] = False
    return make_model(DEFAULT_MODEL, **params).fit(data)


def train(
    db: Database,
    data_dir: Path,
    *,
    sources: tuple[str, ...] | None = None,
    activate: bool = True,
    on_step: Step | None = None,
) -> TrainResult:
    """Train on the event log, save a new version under ``data_dir/models``, activate it."""
    started = time.perf_counter()
    with db.session(write=False) as session:
        total = session.execute(select(func.count()).select_from(BehaviorEvent.__table__)).scalar()
    if on_step:
        on_step("reading events", 0, int(total or 0))
    data = read_sequences(
        db,
        sources=sources,
        on_rows=(lambda n: on_step("reading events", n, None)) if on_step else None,
    )
    if data.n_items < 2 or data.n_interactions == 0:
        raise ValueError("not enough behaviour events to train on (need at least two items)")
    if on_step:
        on_step("fitting next-item model", 0, None)
    model = fit_next_item(data)
    version = utcnow().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    root = Path(data_dir).resolve() / "models" / version
    tmp = root.with_name(root.name + ".tmp")
    if on_step:
        on_step("saving artifact", 0, None)
    model.save(tmp / MODEL_DIR)
    if on_step:
        on_step("neighbour lists", 0, model.n_items)
    items, scores = build_neighbours(
        model,
        on_progress=(lambda done, _n: on_step("neighbour lists", BATCH, None)) if on_step else None,
    )
    save_neighbours(tmp / MODEL_DIR, items, scores)
    tmp.rename(root)  # appears complete or not at all
    seconds = time.perf_counter() - started
    try:
        with db.session() as session:
            if activate:
                session.execute(
                    update(FeedModelVersion)
                    .where(FeedModelVersion.is_active.is_(True))
                    .values(is_active=False)
                )
            session.add(
                FeedModelVersion(
                    version=version,
                    path=str(root),
                    models=[model.name],
                    n_users=data.n_users,
                    n_items=data.n_items,
                    n_events=int(total or 0),
                    train_seconds=round(seconds, 2),
                    is_active=activate,
                    created_at=utcnow(),
                )
            )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    if on_step:
        on_step("catalog snapshot", 0, None)
    publish_snapshot(db, data_dir)
    return TrainResult(version, root, data.n_users, data.n_items, int(total or 0), seconds)


def publish_snapshot(db: Database, data_dir: Path) -> Path:
    """Rebuild the serving snapshot file the API processes load (see ``catalog``)."""
    with db.session(write=False) as session:
        return write_snapshot(session, data_dir)


def build_serving_artifacts(db: Database, data_dir: Path) -> str | None:
    """Neighbour lists for the active model version (if it lacks them) and a fresh snapshot.

    Returns the active version, or None when no model is trained yet.
    """
    with db.session(write=False) as session:
        row = session.execute(
            select(FeedModelVersion.version, FeedModelVersion.path)
            .where(FeedModelVersion.is_active.is_(True))
            .order_by(FeedModelVersion.id.desc())
            .limit(1)
        ).first()
    if row is not None:
        folder = Path(row.path) / MODEL_DIR
        if load_neighbours(folder) is None:
            items, scores = build_neighbours(load_model(folder))
            save_neighbours(folder, items, scores)
    publish_snapshot(db, data_dir)
    return row.version if row is not None else None
