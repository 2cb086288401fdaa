"""A study's primary contrasts, declared once from its conditions: what `ray-xt plan` computes power for and what
the report's headline answers (``docs/statistics.md``, "The contrasts, declared up front").

- a study with target-language intermediate training (the scaling studies): English − target-language, per
  ``translate-train`` / ``translate-train-each`` condition the study has;
- a study of English intermediate training without it (phang2020): English intermediate − none and, where the
  study has the ``mlm`` condition, English with target-language MLM − English;
- any other study with an intermediate condition: each condition − none.

Each contrast is taken per (scale, target task, intermediate task), averaged over the target's zero-shot languages
per seed, and, with more than one scale, as a scale interaction (the largest scale minus the smallest). The rows
whose intermediate data is the target's own training data (``shared_training_data``) are not transfer: they form a
family of their own for Holm's adjustment. Everything else (per-language cells, gains of other conditions,
multi-task) is secondary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

TRANSFER, SAME_DATA = "transfer", "same data"  # the two Holm families
SAME_DATA_MARK = "†"  # beside a same-data pair in every table and figure


@dataclass(frozen=True)
class Contrast:
    first: str  # condition groups (ray_xt.stages.Condition.group): per seed, first minus second
    second: str
    table: str  # its per-language table in the report (and CSV file name)
    title: str  # what the difference measures, as the headline names it
    question: str  # the headline's heading for the contrasts that share it

    @property
    def interaction_table(self) -> str:
        return "scale_interaction_" + self.table.removeprefix("en_minus_")


EN_VS_TARGET = "English − target-language intermediate training"
TARGET_LANGUAGE_CONTRASTS = {
    "translate-train": Contrast("en", "translate-train", "en_minus_translate_train",
                                "English − target-language (one model on all target languages)", EN_VS_TARGET),
    "translate-train-each": Contrast("en", "translate-train-each", "en_minus_translate_train_each",
                                     "English − target-language (one model per language)", EN_VS_TARGET),
}
EN_VS_NONE = Contrast("en", "none", "gain_en", "English intermediate − none",
                      "English intermediate training against none")
MLM_VS_EN = Contrast("mlm", "en", "mlm_minus_en", "English + target-language MLM − English",
                     "target-language MLM added to English intermediate training")


def declared(conditions: Iterable[str]) -> list[Contrast]:
    """The primary contrasts of a study whose stages have these condition groups (``none`` included); a study
    without English intermediate training compares each of its conditions with none."""
    groups = set(conditions)
    if "en" not in groups:
        return [Contrast(c, "none", f"gain_{c}", f"{c} − none", "intermediate training against none")
                for c in sorted(groups - {"none"})]
    target_language = [c for name, c in TARGET_LANGUAGE_CONTRASTS.items() if name in groups]
    if target_language:
        return target_language
    return [EN_VS_NONE] + ([MLM_VS_EN] if "mlm" in groups else [])


def study_conditions(cfg) -> set[str]:
    """The condition groups a study's stages will have."""
    return {"none", *cfg.intermediate.conditions, *(["multi-task"] if cfg.intermediate.multi_task else [])}


def headline_question(contrasts: list[Contrast]) -> str:
    return "; ".join(dict.fromkeys(c.question for c in contrasts))


@dataclass(frozen=True)
class PrimaryRow:
    """One hypothesis of the study's primary family: a contrast for one (target, intermediate task) at one scale,
    or its scale interaction (``scale`` reads ``large − small``)."""

    contrast: Contrast
    target: str
    intermediate: str
    scale: str
    family: str  # TRANSFER or SAME_DATA
    why_same: str  # why the pair is not transfer ("" for a transfer pair)

    @property
    def interaction(self) -> bool:
        return " − " in self.scale


def interaction_label(small: str, large: str) -> str:
    return f"{large} − {small}"


def primary_rows(cfg) -> list[PrimaryRow]:
    """Every hypothesis the study's headline will test, before any stage runs."""
    from ray_xt.tasks.registry import shared_training_data

    scales = list(cfg.scales)
    columns = scales + ([interaction_label(scales[0], scales[-1])] if len(scales) > 1 else [])
    rows = []
    for contrast in declared(study_conditions(cfg)):
        for target in cfg.target.tasks:
            for intermediate in cfg.intermediate.tasks:
                why = shared_training_data(intermediate, target) or ""
                rows += [PrimaryRow(contrast, target, intermediate, scale, SAME_DATA if why else TRANSFER, why)
                         for scale in columns]
    return rows


def family_sizes(rows: list[PrimaryRow]) -> dict[str, int]:
    return {family: sum(r.family == family for r in rows) for family in (TRANSFER, SAME_DATA)}


def differences(frame: pd.DataFrame, contrast: Contrast) -> pd.DataFrame:
    """Per (scale, target, intermediate, language, seed): ``first`` minus ``second``; where ``second`` is no
    intermediate training, each intermediate task's stages are compared with the same seed's baseline."""
    from ray_xt.stats import paired_differences

    if contrast.second == "none":
        part = frame[frame.condition == contrast.first]
        baseline = frame[frame.condition == "none"]
        if part.empty or baseline.empty:
            return pd.DataFrame(columns=["scale", "target", "intermediate", "language", "seed", "diff"])
        frame = pd.concat([part, *(baseline.assign(intermediate=i) for i in part.intermediate.unique())])
    return paired_differences(frame, contrast.first, contrast.second)
