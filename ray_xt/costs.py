"""What a study will cost: trial-hours per scale from a throughput table the project keeps and refreshes.

Throughput (training examples per second per trial) starts from each scale's table value in
``ray_xt/scales.py`` and is replaced by what trials measured: every finished sweep stage adds its
trials' measured throughput to ``<storage>/throughput.json``, which ``ray-xt plan`` reads.
Estimates are upper bounds: every trial runs all its epochs (ASHA stops some early).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ray_xt.config import StudyConfig
from ray_xt.scales import SCALES
from ray_xt.stages import Stage
from ray_xt.tasks.registry import TASKS, TRAIN_SIZES


class ThroughputTable:
    """Measured examples/s per scale (a running mean over trials), stored as JSON on the study storage.

    Entries are filed under ``Scale.throughput_key`` (a micro scale's name and shape), so redefining a micro
    scale starts its estimate afresh instead of mixing the old model's trials into the mean."""

    def __init__(self, location: str | Path):
        from ray_xt.storage import read_text

        self.location = str(location)
        text = read_text(self.location)
        self.data: dict[str, dict] = json.loads(text) if text is not None else {}

    def examples_per_second(self, scale: str) -> tuple[float, str]:
        entry = self.data.get(SCALES[scale].throughput_key)
        if entry and entry.get("trials"):
            return entry["examples_per_second"], f"measured over {entry['trials']} trials"
        return SCALES[scale].examples_per_second, "table default"

    def add(self, scale: str, measured: list[float | None]) -> None:
        values = [v for v in measured if v is not None and v > 0]
        if not values:
            return
        key = SCALES[scale].throughput_key
        entry = self.data.get(key, {"examples_per_second": 0.0, "trials": 0})
        n = entry["trials"] + len(values)
        entry["examples_per_second"] = (entry["examples_per_second"] * entry["trials"] + sum(values)) / n
        entry["trials"] = n
        self.data[key] = entry
        from ray_xt.storage import write_text

        write_text(self.location, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def training_examples(cfg: StudyConfig, stage: Stage) -> int:
    """Examples one trial of the stage trains on per epoch."""
    if not stage.sweeps:
        return 0
    from ray_xt.stages import MULTI_TASK

    trial = cfg.trial_for(stage.task)
    sources = cfg.intermediate.tasks if stage.task == MULTI_TASK else [TASKS[stage.task].train_task or stage.task]
    total = 0
    for source in sources:
        n = cfg.micro.train_size if cfg.data.source == "micro" else TRAIN_SIZES.get(source, 0)
        total += min(n, trial.max_train_examples) if trial.max_train_examples else n
    return total


def processed_examples(cfg: StudyConfig, stage: Stage) -> int:
    """Examples one trial processes per epoch: its task's, and in the mlm condition the MLM batches taken on top
    (``intermediate.mlm_ratio`` per task batch)."""
    extra = cfg.intermediate.mlm_ratio if stage.mixes_mlm else 0.0
    return round(training_examples(cfg, stage) * (1 + extra))


@dataclass
class ScaleCost:
    scale: str
    stages: int
    trials: int
    trial_hours: float  # wall hours of one trial slot
    device: str  # "GPU" or "CPU core"
    device_hours: float
    throughput: float
    source: str


def devices_per_trial(cfg: StudyConfig, scale: str) -> tuple[str, float]:
    """What one trial of a scale holds: ("GPU", n) or ("CPU core", n), every worker's devices counted."""
    cpus, gpus = cfg.resources_for(scale)
    workers = cfg.workers_for(scale)  # a worker-group trial holds every worker's devices
    return ("GPU", gpus * workers) if gpus else ("CPU core", cpus * workers)


def stage_trial_seconds(cfg: StudyConfig, stage: Stage, rate: float) -> float:
    """Trial-slot seconds of one stage at ``rate`` examples/s: every trial runs all its epochs (an upper bound)."""
    if not stage.sweeps:
        return 0.0
    from ray_xt.warm_start import samples_for

    return samples_for(cfg, stage) * cfg.trial_for(stage.task).epochs * processed_examples(cfg, stage) / rate


def stage_device_hours(cfg: StudyConfig, stage: Stage, table: ThroughputTable) -> float:
    """The plan's estimate of one stage's device-hours (GPU-hours on a GPU scale)."""
    return stage_trial_seconds(cfg, stage, table.examples_per_second(stage.scale)[0]) / 3600 * \
        devices_per_trial(cfg, stage.scale)[1]


def estimate(cfg: StudyConfig, stages: list[Stage], table: ThroughputTable) -> list[ScaleCost]:
    from ray_xt.warm_start import samples_for

    costs = []
    for scale in cfg.scales:
        mine = [s for s in stages if s.scale == scale]
        rate, source = table.examples_per_second(scale)
        seconds = sum(stage_trial_seconds(cfg, s, rate) for s in mine)
        trials = sum(samples_for(cfg, s) for s in mine if s.sweeps)
        device, per_trial = devices_per_trial(cfg, scale)
        costs.append(ScaleCost(scale, len(mine), trials, seconds / 3600, device, seconds / 3600 * per_trial, rate,
                               source))
    return costs


def asha_lines(cfg: StudyConfig, stages: list[Stage]) -> list[str]:
    """A warning where ASHA can never stop a trial: its grace period is not shorter than the reports a trial
    makes (those sweeps run every trial to the end)."""
    from ray_xt.loop import Schedule

    if not cfg.scheduler.enabled:
        return []
    reports: dict[int, int] = {}
    for stage in stages:
        if not stage.sweeps:
            continue
        t = cfg.resolved_trial(stage.task, stage.scale)
        n = Schedule.of(max(1, training_examples(cfg, stage)), t.batch_size, t.epochs, t.evals_per_epoch).reports
        if n <= cfg.scheduler.grace_period:
            reports[n] = reports.get(n, 0) + 1
    if not reports:
        return []
    counts = ", ".join(f"{k} stage(s) with {n} report(s) per trial" for n, k in sorted(reports.items()))
    return [f"\nwarning: scheduler.grace_period {cfg.scheduler.grace_period} is not shorter than the reports of "
            f"{sum(reports.values())} sweep stage(s) ({counts}): ASHA can never stop their trials, which all run to "
            "the end. Lower grace_period, or raise trial.evals_per_epoch / epochs"]


def trial_count_line(cfg: StudyConfig, stages: list[Stage]) -> str:
    """The plan's first line: stages, trials (warm stages run ``warm_start.num_samples``), what runs at once."""
    from ray_xt.warm_start import samples_for

    warm = [s for s in stages if s.informants]
    return (f"study {cfg.name}: {len(stages)} stages, {sum(samples_for(cfg, s) for s in stages if s.sweeps)} trials "
            f"({cfg.search.num_samples} per sweep stage"
            + (f", {samples_for(cfg, warm[0])} per warm one ({len(warm)} warm)" if warm else "")
            + f", {cfg.search.max_concurrent} at once; {cfg.parallel_stages} stages at once)")
