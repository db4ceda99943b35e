"""Domain events of the content side, published with ``kit.signals.publish`` in the
transaction that caused them (the feed and analytics log them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreatorApproved:
    """An operator approved a creator application; the user now holds the creator role."""

    user_id: int


@dataclass(frozen=True)
class PostPublished:
    """A post became public (directly, or when an operator approved it)."""

    post_id: int
    author_id: int


@dataclass(frozen=True)
class PostWithdrawn:
    """A public post was unpublished, deleted or rejected."""

    post_id: int


@dataclass(frozen=True)
class LiveStarted:
    """A creator's live room went live."""

    room_id: int
    creator_id: int


@dataclass(frozen=True)
class LiveEnded:
    room_id: int


@dataclass(frozen=True)
class Followed:
    follower_id: int
    target_kind: str
    target_id: int


@dataclass(frozen=True)
class Unfollowed:
    follower_id: int
    target_kind: str
    target_id: int
