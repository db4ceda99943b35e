"""Recommendation library for the personalized feed (千人千面): pure functions over arrays.

Every recommender implements ``Recommender`` (fit / recommend / similar_items / save / load);
``TransitionEASERecommender`` is the default sequence-aware model. The traffic policy
(``juxing.recsys.policy``) re-ranks all users' candidate lists together under exposure caps.
"""

from juxing.recsys.base import (
    ArtifactError,
    Recommendations,
    Recommender,
    load_model,
    registered_models,
)
from juxing.recsys.baselines import ALSRecommender, ItemKNNRecommender, PopularityRecommender
from juxing.recsys.data import Interactions, LeaveOneOutSplit, leave_one_out
from juxing.recsys.policy import POLICIES, ExposurePrices, TrafficPolicy, apply_policy
from juxing.recsys.sequential import TransitionEASERecommender

__all__ = [
    "POLICIES",
    "ALSRecommender",
    "ArtifactError",
    "ExposurePrices",
    "Interactions",
    "ItemKNNRecommender",
    "LeaveOneOutSplit",
    "PopularityRecommender",
    "Recommendations",
    "Recommender",
    "TrafficPolicy",
    "TransitionEASERecommender",
    "apply_policy",
    "leave_one_out",
    "load_model",
    "registered_models",
]
