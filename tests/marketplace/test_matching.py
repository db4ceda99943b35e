"""Matching prefers the creator whose audience fits, and says why."""

from __future__ import annotations

from juxing.marketplace.matching import (
    BriefRecord,
    CreatorRecord,
    Target,
    rank_briefs,
    rank_creators,
)

# Shoppers 1-50 are in "beauty-buyers", 51-100 in "gadget-browsers".
SEGMENTS = {u: ("beauty-buyers" if u <= 50 else "gadget-browsers") for u in range(1, 101)}
NAMES = {"beauty-buyers": "Heavy buyers · Beauty", "gadget-browsers": "Regular browsers · Gadgets"}


def test_the_creator_whose_audience_fits_ranks_first_with_reasons():
    beauty = CreatorRecord(1, {u: 1.0 for u in range(1, 41)}, clicks=200, orders=4)
    gadgets = CreatorRecord(2, {u: 1.0 for u in range(51, 100)}, clicks=200, orders=12)
    newbie = CreatorRecord(3, {}, clicks=0, orders=0)
    target = Target(
        buyers=frozenset(range(1, 21)), wanted_segments=("beauty-buyers",), segment_names=NAMES
    )
    ranked = rank_creators(target, [gadgets, newbie, beauty], SEGMENTS)
    assert [m.creator_id for m in ranked] == [1, 2, 3]
    assert ranked[0].audience_fit > ranked[1].audience_fit
    assert any("wanted segments" in r and "Beauty" in r for r in ranked[0].reasons)
    assert any("buyers engage" in r for r in ranked[0].reasons)
    assert any("converts" in r for r in ranked[1].reasons)
    # Better conversion wins only between equally fitting audiences.
    twin = CreatorRecord(4, {u: 1.0 for u in range(1, 41)}, clicks=200, orders=20)
    assert rank_creators(target, [beauty, twin], SEGMENTS)[0].creator_id == 4


def test_without_wanted_segments_the_buyers_mix_is_the_target():
    beauty = CreatorRecord(1, {u: 1.0 for u in range(21, 50)})
    gadgets = CreatorRecord(2, {u: 1.0 for u in range(51, 100)})
    target = Target(buyers=frozenset(range(1, 11)), segment_names=NAMES)
    ranked = rank_creators(target, [gadgets, beauty], SEGMENTS)
    assert ranked[0].creator_id == 1
    assert any("resembles your buyers" in r for r in ranked[0].reasons)


def test_briefs_for_a_creator_rank_by_fit_then_pay():
    creator = CreatorRecord(1, {u: 1.0 for u in range(1, 41)})
    fits = BriefRecord(
        10, Target(wanted_segments=("beauty-buyers",), segment_names=NAMES), 10_000, 1000
    )
    pays_more = BriefRecord(
        11, Target(wanted_segments=("gadget-browsers",), segment_names=NAMES), 20_000, 2000
    )
    ranked = rank_briefs(creator, [pays_more, fits], SEGMENTS)
    assert [b for b, _s, _r in ranked] == [10, 11]
    assert any("fixed fee" in r for r in ranked[0][2])
