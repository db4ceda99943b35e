"""Audience segments on the Taobao UserBehavior sample, streamed in chunks."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from juxing.analytics import service
from juxing.analytics.segments import KIND_INDEX, BehaviourAccumulator, kind_codes, segment
from juxing.models.analytics import AudienceSegment, ShopperSegment
from juxing.models.events import BehaviorEvent

pytestmark = pytest.mark.data


def _stream(path, size=10_000, limit=None):
    with open(path, newline="") as f:
        rows = []
        for n, r in enumerate(csv.reader(f)):
            if limit is not None and n >= limit:
                break
            rows.append(r)
            if len(rows) == size:
                yield rows
                rows = []
        if rows:
            yield rows


def _accumulate(path, size):
    acc = BehaviourAccumulator()
    for rows in _stream(path, size):
        a = np.array(rows)
        acc.add(
            users=a[:, 0].astype(np.int64),
            kinds=kind_codes(a[:, 3].tolist()),
            ts=a[:, 4].astype(np.float64),
            categories=a[:, 2].astype(np.int64),
        )
    return acc.behaviour()


def test_taobao_sample_segments_are_named_sized_and_consistent(shared_data):
    path = shared_data / "taobao-userbehavior-sample" / "UserBehavior_sample.csv"
    b = _accumulate(path, 10_000)
    assert len(b.user_ids) == 815
    assert b.kind_counts.sum() == 84_475
    assert b.kind_counts[:, KIND_INDEX["buy"]].sum() == 1_750
    # Chunk size does not change the result.
    b2 = _accumulate(path, 3_333)
    assert np.array_equal(
        b.kind_counts[np.argsort(b.user_ids)], b2.kind_counts[np.argsort(b2.user_ids)]
    )

    result = segment(b, k=6, seed=7)
    assert len(result.segments) == 6
    assert sum(s.size for s in result.segments) == 815
    assert [s.size for s in result.segments] == sorted(
        (s.size for s in result.segments), reverse=True
    )
    assert len({s.key for s in result.segments}) == 6
    for s in result.segments:
        assert s.name and s.description.startswith(f"{s.size} shoppers")
    # Names say what the members do: a "buyers" segment buys more per view than everyone.
    rate = b.rate("buy")
    for j, s in enumerate(result.segments):
        members = result.labels == j
        if "buyers" in s.name:
            assert rate[members].mean() > 1.5 * rate.mean()
        if s.name.startswith("Heavy"):
            assert b.events[members].mean() >= 1.5 * b.events.mean()
    # Deterministic for a seed.
    again = segment(b, k=6, seed=7)
    assert np.array_equal(again.labels, result.labels)


def test_batch_job_segments_the_event_log(session, shared_data):
    path = shared_data / "taobao-userbehavior-sample" / "UserBehavior_sample.csv"
    rows = []
    for chunk in _stream(path, 5_000, limit=8_000):
        for n, (u, item, cat, kind, ts) in enumerate(chunk):
            rows.append(
                {
                    "source": "app",
                    "user_id": int(u),
                    "action": "view" if kind == "pv" else kind,
                    "target_type": "product",
                    "target_id": int(item),
                    "category_id": int(cat),
                    "client_event_id": f"tb{len(rows)}",
                    "occurred_at": datetime.fromtimestamp(int(ts), UTC),
                    "received_at": datetime.fromtimestamp(int(ts), UTC),
                }
            )
    session.execute(insert(BehaviorEvent), rows)
    users = len({r["user_id"] for r in rows})
    result = service.compute_segments(session, k=4)
    assert session.scalar(select(func.count()).select_from(ShopperSegment)) == users
    stored = service.list_segments(session=session)
    assert sum(s.size for s in stored) == users and len(stored) == len(result.segments)
    # A rerun replaces the previous segmentation instead of adding to it.
    service.compute_segments(session, k=4)
    assert session.scalar(select(func.count()).select_from(AudienceSegment)) == len(stored)
