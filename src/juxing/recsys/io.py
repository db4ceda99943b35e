"""Readers for interaction logs: the S3-Rec ``seq`` format and Tianchi UserBehavior CSV.

Both return ``Interactions`` with the original user / item ids kept as strings, plus the list of
malformed lines (1-based line number and reason); malformed lines are skipped, never fatal.
The UserBehavior reader streams the file in blocks of lines into numpy arrays, so the 100M-row
full data set never exists as per-row Python objects.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from juxing.recsys.data import Interactions

BEHAVIORS = ("pv", "cart", "fav", "buy")
# What a UserBehavior row may hold (the feed's importer applies the same rules): ids are
# positive 64-bit integers (category may be 0); timestamps are plausible, 2000-01-01 ..
# 2100-01-01 (a few rows of the data fall outside the official window; those are kept).
MIN_TS, MAX_TS = 946_684_800, 4_102_444_800
MAX_ID = 2**63 - 1
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


def read_seq(
    path: str | Path, progress: Progress | None = None
) -> tuple[Interactions, list[BadLine]]:
    """``user item item ...`` per line, items oldest first. Blank lines are ignored."""
    users: list[str] = []
    seqs: list[list[str]] = []
    bad: list[BadLine] = []
    seen: set[str] = set()
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if progress is not None:
                progress(len(raw))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(BadLine(no, "not valid UTF-8"))
                continue
            tokens = text.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                bad.append(BadLine(no, "a user id without any item"))
                continue
            if any(not t.isprintable() for t in tokens):
                bad.append(BadLine(no, "control characters in an id"))
                continue
            if tokens[0] in seen:
                bad.append(BadLine(no, f"user {tokens[0]!r} appears twice (first line kept)"))
                continue
            seen.add(tokens[0])
            users.append(tokens[0])
            seqs.append(tokens[1:])
    flat = np.array([i for s in seqs for i in s], dtype=str)
    item_ids, items = np.unique(flat, return_inverse=True) if len(flat) else (flat, flat)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    data = Interactions(
        indptr,
        np.asarray(items, dtype=np.int32),
        len(item_ids),
        None,
        np.array(users, dtype=str),
        item_ids.astype(str),
    )
    return data, bad


def attributes_path_for(path: str | Path) -> Path:
    """The S3-Rec convention: ``Beauty.txt`` -> ``Beauty_item2attributes.json`` next to it."""
    path = Path(path)
    return path.with_name(f"{path.stem}_item2attributes.json")


def with_item_attributes(data: Interactions, path: str | Path) -> Interactions:
    """Attach ``{"item id": [attribute id, ...]}`` JSON side information (unknown items ignored)."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of item id -> attribute ids")
    ids = data.item_ids if data.item_ids is not None else np.arange(data.n_items).astype(str)
    index = {str(item): i for i, item in enumerate(ids.tolist())}
    attr_index: dict[str, int] = {}
    rows, cols = [], []
    for item, attrs in raw.items():
        row = index.get(str(item))
        if row is None or not isinstance(attrs, list):
            continue
        for a in attrs:
            rows.append(row)
            cols.append(attr_index.setdefault(str(a), len(attr_index)))
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(data.n_items, max(len(attr_index), 1)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return dataclasses.replace(data, item_attributes=matrix)


def _blocks(path: str | Path, block_lines: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) blocks of a file."""
    with open(path, "rb") as fh:
        start = 1
        while True:
            lines = fh.readlines(block_lines * 40)
            if not lines:
                return
            yield start, lines
            start += len(lines)


def read_userbehavior(
    path: str | Path,
    *,
    behaviors: tuple[str, ...] = BEHAVIORS,
    block_lines: int = 1_000_000,
    progress: Progress | None = None,
) -> tuple[Interactions, list[BadLine]]:
    """Tianchi ``user_id,item_id,category_id,behavior_type,timestamp`` (no header).

    Events are ordered per user by timestamp (stable, so file order breaks ties).
    """
    codes = {b.encode(): i for i, b in enumerate(BEHAVIORS)}
    wanted = np.array([b in behaviors for b in BEHAVIORS])
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    bad: list[BadLine] = []
    for first, lines in _blocks(path, block_lines):
        if progress is not None:
            progress(sum(len(x) for x in lines))
        user, item, ts, beh = _parse_block(first, lines, codes, bad)
        keep = wanted[beh]
        parts.append((user[keep], item[keep], ts[keep]))
    users = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    items = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    stamps = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    user_ids, uidx = np.unique(users, return_inverse=True)
    item_ids, iidx = np.unique(items, return_inverse=True)
    order = np.lexsort((stamps, uidx))
    counts = np.bincount(uidx, minlength=len(user_ids))
    indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = Interactions(
        indptr,
        iidx[order].astype(np.int32),
        len(item_ids),
        stamps[order].astype(np.float64),
        user_ids.astype(str),
        item_ids.astype(str),
    )
    return data, bad


def _parse_block(
    first: int, lines: list[bytes], codes: dict[bytes, int], bad: list[BadLine]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised parse of a block; falls back to per-line checks when the block is not clean."""
    try:
        table = np.array([ln.rstrip(b"\r\n").split(b",") for ln in lines], dtype=bytes)
        if table.ndim != 2 or table.shape[1] != 5:
            raise ValueError("ragged")
        beh = np.array([codes[b] for b in table[:, 3].tolist()], dtype=np.int64)
        uids, iids, cats, stamps = (table[:, c].astype(np.int64) for c in (0, 1, 2, 4))
        ok = (uids > 0) & (iids > 0) & (cats >= 0) & (stamps >= MIN_TS) & (stamps < MAX_TS)
        if not ok.all():
            raise ValueError("out of range")  # the per-line pass says which and why
        return uids, iids, stamps, beh
    except (ValueError, KeyError, OverflowError):
        pass
    user, item, ts, beh_list = [], [], [], []
    for offset, ln in enumerate(lines):
        no = first + offset
        text = ln.rstrip(b"\r\n")
        if not text.strip():
            continue
        cols = text.split(b",")
        if len(cols) != 5:
            bad.append(BadLine(no, f"expected 5 comma-separated fields, got {len(cols)}"))
            continue
        if cols[3] not in codes:
            bad.append(BadLine(no, f"unknown behavior_type {cols[3][:20]!r}"))
            continue
        try:
            u, i, t = int(cols[0]), int(cols[1]), int(cols[4])
        except ValueError:
            bad.append(BadLine(no, "user_id, item_id and timestamp must be integers"))
            continue
        try:
            c = int(cols[2])
        except ValueError:
            bad.append(BadLine(no, "category_id must be an integer"))
            continue
        if not (0 < u <= MAX_ID and 0 < i <= MAX_ID and 0 <= c <= MAX_ID):
            bad.append(BadLine(no, "ids must be positive 64-bit integers"))
            continue
        if not MIN_TS <= t < MAX_TS:
            bad.append(BadLine(no, f"timestamp {t} is outside 2000..2100"))
            continue
        user.append(u)
        item.append(i)
        ts.append(t)
        beh_list.append(codes[cols[3]])
    return (
        np.array(user, dtype=np.int64),
        np.array(item, dtype=np.int64),
        np.array(ts, dtype=np.int64),
        np.array(beh_list, dtype=np.int64),
    )
