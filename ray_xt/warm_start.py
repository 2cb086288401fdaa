"""Sweeps that start warm: which finished stages inform a stage's search (the rule, in one place) and what they
tell it.

A sweep stage is informed by its close relatives in the same study:

- a target stage trained from an intermediate checkpoint, by the same target trained from the pretrained model
  (same scale and seed): the learning rates that suit a task change little with the encoder's starting point;
- a stage at any seed but the study's first, by its twin at the first seed (same coordinates otherwise);
- with ``from_smaller_scale``, by its twin one scale down (the study's next smaller scale), whose learning rates
  are multiplied by the width ratio (hidden size small / large: the muP rule for Adam's hidden weights) and
  clipped to the search range.

Informants are fixed by the study's coordinates, never by which stages happened to finish first: a warm stage
waits for them (like an upstream), and its key includes theirs (``Stage.informants``), so a resumed study finds
the same keys. What they tell the search: the best learning rate of each is evaluated first, and every trial
they scored is given to Optuna as an observation (``OptunaSearch.add_evaluated_point``), the search range kept.
Scores from another stage are on that stage's footing; TPE only uses their ranks to split good from bad, which is
what carries over. The rule is recorded with every warm stage (``warm_start`` in its record, MLflow tags)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from ray_xt.records import StageRecord

WARM_START_VERSION = 1  # bump when the rule or what informants tell the search changes (docs/migrations.md)


def informant_coordinates(kind: str, scale: str, task: str, seed: int, condition: str,
                          intermediate_task: str | None, has_upstream: bool, first_seed: int,
                          smaller_scale: str | None) -> list[tuple]:
    """The coordinates (kind, scale, task, seed, condition, intermediate task) of the stages that inform a sweep
    stage with these coordinates, in the order they are consulted."""
    found: list[tuple[str, str, str, int, str, str | None]] = []
    if kind == "target" and has_upstream:
        found.append(("target", scale, task, seed, "none", None))
    if seed != first_seed:
        found.append((kind, scale, task, first_seed, condition, intermediate_task))
    if smaller_scale is not None:
        found.append((kind, smaller_scale, task, seed, condition, intermediate_task))
    return found


def smaller_scale(scales: list[str], scale: str) -> str | None:
    """The study's next smaller scale than ``scale`` (by width), if any."""
    from ray_xt.scales import SCALES

    narrower = [s for s in scales if SCALES[s].hidden_size < SCALES[scale].hidden_size]
    return max(narrower, key=lambda s: SCALES[s].hidden_size) if narrower else None


def settings_digest(cfg) -> str:
    """What a warm stage's key carries besides its informants' keys: the rule's version and settings."""
    payload = {"version": WARM_START_VERSION, **cfg.search.warm_start.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WarmStart:
    """What a stage's informants tell its search."""

    informants: tuple[str, ...]  # their labels
    first_points: tuple[float, ...]  # learning rates evaluated first (each informant's best, rescaled)
    observations: tuple[tuple[float, float], ...]  # (learning rate, score) of every scored informant trial

    def as_record(self) -> dict:
        return {"version": WARM_START_VERSION, "informants": list(self.informants),
                "first_points": list(self.first_points), "observations": len(self.observations)}

    def tags(self) -> dict[str, str]:
        return {"warm_start.informants": "; ".join(self.informants)[:4000],
                "warm_start.first_learning_rates": ",".join(f"{lr:.3g}" for lr in self.first_points),
                "warm_start.observations": str(len(self.observations))}


def warm_start(stage_scale: str, informants: list[tuple[str, str, StageRecord]], low: float,
               high: float) -> WarmStart:
    """From (label, scale, record) of each informant: its best learning rate first, every scored trial as an
    observation; an informant of another scale has its learning rates scaled by the width ratio."""
    from ray_xt.scales import SCALES

    def moved(lr: float, scale: str) -> float:
        ratio = SCALES[scale].hidden_size / SCALES[stage_scale].hidden_size
        return min(high, max(low, lr * ratio))

    firsts: list[float] = []
    observations: list[tuple[float, float]] = []
    for _, scale, record in informants:
        sweep = record["sweep"]
        best = sweep.get("best_learning_rate")
        if best and moved(best, scale) not in firsts:
            firsts.append(moved(best, scale))
        for trial in sweep.get("trials", []):
            lr, score = trial.get("learning_rate"), trial.get("score")
            if lr and score is not None and math.isfinite(score) and math.isfinite(lr):
                observations.append((moved(lr, scale), float(score)))
    return WarmStart(tuple(label for label, _, _ in informants), tuple(firsts), tuple(observations))


def samples_for(cfg, stage) -> int:
    """Trials a stage's sweep runs: ``warm_start.num_samples`` where it starts warm, else ``search.num_samples``."""
    warm = cfg.search.warm_start
    return warm.num_samples if stage.informants and warm.num_samples is not None else cfg.search.num_samples
