"""A finished stage's record, as ``<storage>/<study>/stages/<key>.json`` keeps it and the report, the validity check,
the power analysis and ``ray-xt plan`` read it. JSON on disk (records of finished studies stay readable), typed here.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast


class StageTags(TypedDict):
    """The stage's coordinates (also its MLflow tags); every value a string."""

    stage: str  # intermediate | target | retrieval
    scale: str
    task: str
    condition: str  # ray_xt.stages.Condition spelled out
    intermediate_task: str  # "none" for a target trained from the pretrained model
    seed: str
    stage_key: str


class SweepSummary(TypedDict, total=False):
    """``ray_xt.sweep.SweepOutcome`` (a retrieval stage: its score over languages, no learning rate)."""

    best_trial_id: str
    best_score: float
    best_learning_rate: float
    best_model_dir: str
    trials: list[dict]  # each trial's id, status, learning rate, score, examples/s
    resumed: bool  # restored from an interrupted run's experiment folder
    trials_without_results: int  # trials the interruption caught before their first result (restarted)


class _Required(TypedDict):
    stage: StageTags
    label: str
    sweep: SweepSummary


class StageRecord(_Required, total=False):
    parent_run_id: str  # the stage's MLflow run
    seconds: float  # the whole stage, features to record
    sweep_seconds: float
    sweep_started_at: float
    trial_spec: dict  # ray_xt.loop.TrialSpec as asdict
    warm_start: dict  # a warm stage: its informants and what they told the search (ray_xt.warm_start)
    model_dir: str  # retrieval: the checkpoint it embedded with
    # target and retrieval stages: the best checkpoint zero-shot on each language (dev, or test where XTREME has no
    # dev), the metrics behind each score, the split used, test-set metrics of the written submission, and where
    # the predictions are
    zero_shot: dict[str, float]
    zero_shot_metrics: dict[str, dict[str, float]]
    zero_shot_splits: dict[str, str]
    test_metrics: dict[str, dict[str, float]]
    predictions_dir: str


def stage_record(stage: StageTags, label: str, sweep: SweepSummary, **fields: Any) -> StageRecord:
    """The one constructor of a stage record: its coordinates, label and sweep summary, and what the stage adds
    (refused if it is not a StageRecord field)."""
    unknown = sorted(set(fields) - StageRecord.__required_keys__ - StageRecord.__optional_keys__)
    if unknown:
        raise TypeError(f"not stage record fields: {unknown}")
    return cast(StageRecord, {"stage": stage, "label": label, "sweep": sweep, **fields})


def sweep_summary(outcome: Any) -> SweepSummary:
    """A ``ray_xt.sweep.SweepOutcome`` as a record keeps it."""
    from dataclasses import asdict

    return cast(SweepSummary, asdict(outcome))
