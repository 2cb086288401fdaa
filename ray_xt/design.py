"""What a study's design can show, before GPU-hours are spent: its primary contrasts (``ray_xt.contrasts``), which
pairs are transfer, and the smallest true difference each contrast detects with its seeds at the Holm level of
its family — from each target's seed-to-seed sd, measured where finished stages allow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ray_xt.config import StudyConfig
from ray_xt.contrasts import (
    SAME_DATA,
    TRANSFER,
    Contrast,
    declared,
    differences,
    family_sizes,
    primary_rows,
    study_conditions,
)
from ray_xt.records import StageRecord
from ray_xt.stats import detectable_difference
from ray_xt.tasks.registry import TASKS

ALPHA = 0.05
MORE_SEEDS = (5, 10)  # what the plan also prints the detectable difference for


@dataclass(frozen=True)
class Noise:
    sd: float  # points: seed-to-seed sd of the per-seed, language-averaged difference
    df: int  # 0 for the stated default
    source: str


def seed_sds(records: list[StageRecord], contrast: Contrast) -> dict[str, tuple[float, int]]:
    """Per target: the sd over seeds of the contrast's language-averaged difference, pooled over its (scale,
    intermediate task) cells with at least two seeds (collapsed seeds left out, as the report leaves them), and
    its degrees of freedom."""
    from ray_xt.report import scores_frame
    from ray_xt.seed_checks import mark_collapsed
    from ray_xt.stats import ZERO_SHOT_AVERAGE, with_average_language

    frame = scores_frame(records)
    if frame.empty:
        return {}
    frame = mark_collapsed(frame)
    diffs = with_average_language(differences(frame[~frame.collapsed].drop(columns="collapsed"), contrast))
    if diffs.empty:
        return {}
    out = {}
    for target, part in diffs[diffs.language == ZERO_SHOT_AVERAGE].groupby("target"):
        squares, df = 0.0, 0
        for _, cell in part.groupby(["scale", "intermediate"]):
            values = cell["diff"].to_numpy()
            if len(values) >= 2:
                squares += float(np.var(values, ddof=1)) * (len(values) - 1)
                df += len(values) - 1
        if df:
            out[str(target)] = (math.sqrt(squares / df), df)
    return out


def noise(target: str, contrast: Contrast, cfg: StudyConfig, own: list[StageRecord],
          pilot: list[StageRecord], pilot_name: str | None) -> Noise:
    """This study's finished stages first, then the pilot's, else the study file's stated default."""
    for records, name in ((own, "this study's finished stages"), (pilot, f"pilot {pilot_name}")):
        measured = seed_sds(records, contrast).get(target) if records else None
        if measured:
            return Noise(measured[0], measured[1], f"{name}, {measured[1]} df")
    return Noise(cfg.power.default_sd, 0, "power.default_sd: a stated default, not a measurement")


def power_lines(cfg: StudyConfig, records: list[StageRecord], pilot: list[StageRecord] | None = None,
                pilot_name: str | None = None) -> list[str]:
    """The plan's lines: the primary contrasts, their pairs and Holm families, and per (contrast, target) the
    detectable difference at each scale and for the scale interaction."""
    contrasts = declared(study_conditions(cfg))
    rows = primary_rows(cfg)
    if not rows:
        return []
    several_scales = len(cfg.scales) > 1
    lines = ["\nprimary contrasts (the report's headline; ray_xt/contrasts.py), per target × intermediate task, "
             "averaged over the target's zero-shot languages, at each scale"
             + (" and as the scale interaction (largest − smallest scale):" if several_scales else ":")]
    lines += [f"  {c.title}" for c in contrasts]
    for target in cfg.target.tasks:
        retrieval = " (retrieval: no target training)" if TASKS[target].family == "retrieval" else ""
        transfer = [i for i in cfg.intermediate.tasks
                    if not next(r.why_same for r in rows if r.target == target and r.intermediate == i)]
        if transfer:
            lines.append(f"  {target} <- {', '.join(transfer)}: transfer pair{'s' if len(transfer) > 1 else ''}"
                         + retrieval)
        for intermediate in [i for i in cfg.intermediate.tasks if i not in transfer]:
            why = next(r.why_same for r in rows if r.target == target and r.intermediate == intermediate)
            lines.append(f"  {target} <- {intermediate}: same training data ({why}): not transfer, reported apart")
    sizes = family_sizes(rows)
    lines.append(f"  Holm families: {sizes[TRANSFER]} transfer hypotheses"
                 + (f", {sizes[SAME_DATA]} same-data ones (their own family)" if sizes[SAME_DATA] else ""))

    seeds, wanted = len(cfg.seeds), cfg.power.wanted_power
    lines.append(f"\ndetectable difference (points; {wanted:.0%} power, two-sided, {seeds} seed(s); at alpha 0.05/m, "
                 "the family's strictest Holm step: a contrast this large is detected whatever the others show; "
                 "scale interaction: Welch's test over the two scales' seeds):")
    lines.append("| contrast | target | family (m) | sd (source) | per scale | "
                 + ("scale interaction | " if several_scales else "")
                 + " | ".join(f"per scale, {n} seeds" for n in MORE_SEEDS if n != seeds) + " |")
    lines.append("| --- " * (5 + several_scales + len([n for n in MORE_SEEDS if n != seeds])) + "|")
    for contrast in contrasts:
        for target in cfg.target.tasks:
            families = sorted({r.family for r in rows if r.contrast == contrast and r.target == target})
            n = noise(target, contrast, cfg, records, pilot or [], pilot_name)
            for family in families:
                alpha = ALPHA / sizes[family]
                cells = [f"{detectable_difference(n.sd, seeds, alpha, wanted):.1f}"]
                if several_scales:
                    cells.append(f"{detectable_difference(n.sd, seeds, alpha, wanted, design='welch'):.1f}")
                cells += [f"{detectable_difference(n.sd, k, alpha, wanted):.1f}" for k in MORE_SEEDS if k != seeds]
                lines.append(f"| {contrast.title} | {target} | {family} ({sizes[family]}) | {n.sd:.2f} ({n.source}) | "
                             + " | ".join(cells) + " |")
    return lines


def pilot_records(cfg: StudyConfig) -> tuple[list[StageRecord], str | None]:
    """The finished stage records of the study file ``power.pilot`` names (from the storage it names), and its name;
    raises ConfigError for a pilot file that cannot be read."""
    from ray_xt.config import load_study
    from ray_xt.stages import expand
    from ray_xt.study.layout import stage_store

    if cfg.power.pilot is None:
        return [], None
    pilot = load_study(cfg.power.pilot)
    store = stage_store(pilot)
    return [r for r in (store.get(s) for s in expand(pilot)) if r is not None], pilot.name
