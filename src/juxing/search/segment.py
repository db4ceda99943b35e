"""Word segmentation for the full-text index: jieba for Chinese, plain words for the rest.

Both databases index ``tokens``: words separated by single spaces. Index time uses jieba's
search mode (a long word also yields its shorter words: 防晒霜 → 防晒 防晒霜), query time its
precise mode, so a query for either 防晒 or 防晒霜 finds the document.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)

_WORD = re.compile(r"\w", re.UNICODE)
_lock = threading.Lock()
_ready = False
MAX_QUERY_TOKENS = 12


def _ensure_loaded() -> None:
    global _ready
    if not _ready:
        with _lock:
            if not _ready:
                jieba.initialize()
                _ready = True


def _clean(words: Iterable[str]) -> list[str]:
    out = []
    for word in words:
        word = word.strip().lower()
        if word and _WORD.search(word):
            out.append(word)
    return out


def index_tokens(*texts: str | None) -> str:
    """The space-separated tokens to index for ``texts``."""
    _ensure_loaded()
    tokens: list[str] = []
    for text in texts:
        if text:
            tokens.extend(_clean(jieba.cut_for_search(text)))
    return " ".join(tokens)


def query_tokens(query: str) -> list[str]:
    """The distinct tokens of a search query, in order, at most ``MAX_QUERY_TOKENS``."""
    _ensure_loaded()
    seen: dict[str, None] = {}
    for token in _clean(jieba.cut(query)):
        # The databases' own tokenizers split on punctuation inside a jieba token too.
        for part in re.findall(r"\w+", token, re.UNICODE):
            seen.setdefault(part, None)
    return list(seen)[:MAX_QUERY_TOKENS]
