"""What a study's design can show, before GPU-hours are spent: which contrasts are transfer, and the smallest
English − target-language difference its seeds can detect."""

from __future__ import annotations

import math

import numpy as np

from ray_xt.config import StudyConfig
from ray_xt.records import StageRecord
from ray_xt.stats import detectable_difference
from ray_xt.tasks.registry import TASKS, shared_training_data

# Seed-to-seed standard deviation (points) of the language-averaged English − target-language difference,
# pooled over the (scale, target, intermediate) cells of one `make demo` on the micro world (world v10,
# 3 seeds; docs/statistics.md, "Noise"). A stand-in until a study has finished stages of its own.
MICRO_WORLD_SEED_SD = 2.17


def contrast_pairs(cfg: StudyConfig) -> list[tuple[str, str, str | None]]:
    """(target, intermediate, why it is not transfer or None) for every English-vs-target-language contrast."""
    if not ({"translate-train", "translate-train-each"} & set(cfg.intermediate.conditions)) \
            or "en" not in cfg.intermediate.conditions:
        return []
    return [(t, i, shared_training_data(i, t)) for t in cfg.target.tasks for i in cfg.intermediate.tasks]


def pooled_seed_sd(records: list[StageRecord]) -> tuple[float, int] | None:
    """Pooled standard deviation over seeds of the language-averaged English − target-language difference in
    finished stage records, and its degrees of freedom; None with fewer than two seeds in any cell."""
    from ray_xt.report import scores_frame
    from ray_xt.stats import ZERO_SHOT_AVERAGE, paired_differences, with_average_language

    frame = scores_frame(records)
    if frame.empty:
        return None
    squares, df = 0.0, 0
    for condition in ("translate-train", "translate-train-each"):
        diffs = with_average_language(paired_differences(frame, "en", condition))
        if diffs.empty:
            continue
        for _, part in diffs[diffs.language == ZERO_SHOT_AVERAGE].groupby(["scale", "target", "intermediate"]):
            values = part["diff"].to_numpy()
            if len(values) >= 2:
                squares += float(np.var(values, ddof=1)) * (len(values) - 1)
                df += len(values) - 1
    return (math.sqrt(squares / df), df) if df else None


def power_lines(cfg: StudyConfig, records: list[StageRecord]) -> list[str]:
    """The plan's lines on contrasts and the detectable difference."""
    pairs = contrast_pairs(cfg)
    if not pairs:
        return []
    lines = ["\ncontrasts (English vs target-language intermediate training):"]
    for target, intermediate, why in pairs:
        retrieval = " (retrieval: no target training)" if TASKS[target].family == "retrieval" else ""
        lines.append(f"  {target} <- {intermediate}: " + (f"same training data ({why}): not transfer, reported apart"
                                                          if why else "transfer pair") + retrieval)
    measured = pooled_seed_sd(records)
    sd, source = ((measured[0], f"this study's finished stages, {measured[1]} df") if measured else
                  (MICRO_WORLD_SEED_SD, "the micro-world demo; a pilot of this study would replace it"))
    seeds = len(cfg.seeds)
    lines.append(f"detectable difference with {seeds} seed(s) (paired t, two-sided alpha 0.05, power 0.8): "
                 f"{detectable_difference(sd, seeds):.1f} points at a seed-to-seed sd of {sd:.2f} ({source}); "
                 + ", ".join(f"{n} seeds: {detectable_difference(sd, n):.1f}" for n in (3, 5, 10) if n != seeds))
    return lines
