"""The five task families; ``family_of(task)`` picks the one a task belongs to."""

from __future__ import annotations

from ray_xt.families.base import DataError, Evaluation, Family
from ray_xt.families.masked_lm import MaskedLM
from ray_xt.families.multiple_choice import MultipleChoice
from ray_xt.families.pair import PairClassification
from ray_xt.families.retrieval import Retrieval
from ray_xt.families.span_qa import SpanQA
from ray_xt.families.tagging import Tagging
from ray_xt.tasks.registry import TaskSpec

FAMILY_CLASSES: dict[str, type[Family]] = {
    f.name: f for f in (PairClassification, MultipleChoice, Tagging, SpanQA, Retrieval, MaskedLM)
}


def family_of(task: TaskSpec, **options) -> Family:
    return FAMILY_CLASSES[task.family](**options)


__all__ = ["DataError", "Evaluation", "Family", "family_of", "FAMILY_CLASSES"]
