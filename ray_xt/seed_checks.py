"""Seeds that failed to fit, found before any interval is computed.

A target stage whose English dev score is at chance did not learn its task (a degenerate fine-tuning run, as
BERT-style models have on small data): its zero-shot scores measure the failure, not the intermediate task. Such
a seed is flagged by a rule fixed in advance — English dev no more than ``COLLAPSE_MARGIN`` of the headroom above
the task's chance score — listed before the headline, kept in ``scores.csv`` (column ``collapsed``) and left out
of every contrast it would enter (the pair of that seed, not the other seeds). The rule reads English dev only,
never the zero-shot languages the contrasts compare.
"""

from __future__ import annotations

import pandas as pd

COLLAPSE_MARGIN = 0.1  # of the headroom above chance: XNLI (3 labels) 40.0, PAWS-X 55.0, F1 tasks 10.0
STAGE_COLUMNS = ["scale", "target", "seed", "condition", "intermediate"]


def chance_score(task: str) -> float | None:
    """What a model that learnt nothing scores on English dev, in points: uniform guessing over the labels or
    choices; 0 for F1 over spans or tags; None where the stage trains nothing (retrieval has no English dev)."""
    from ray_xt.tasks.registry import TASKS

    spec = TASKS.get(task)
    if spec is None or spec.family == "retrieval":
        return None
    if spec.family == "pair_classification" and spec.num_labels:
        return 100.0 / spec.num_labels
    if spec.family == "multiple_choice" and spec.num_choices:
        return 100.0 / spec.num_choices
    return 0.0


def collapse_threshold(task: str) -> float | None:
    chance = chance_score(task)
    return None if chance is None else chance + COLLAPSE_MARGIN * (100.0 - chance)


def collapsed_stages(frame: pd.DataFrame) -> pd.DataFrame:
    """The target stages (``STAGE_COLUMNS``) whose English dev score is at or below their task's threshold, with
    that score and the threshold."""
    english = frame[frame.language == "en"]
    rows = []
    for r in english.itertuples():
        threshold = collapse_threshold(r.target)
        if threshold is not None and r.score <= threshold:
            rows.append({**{c: getattr(r, c) for c in STAGE_COLUMNS}, "english_dev": r.score, "threshold": threshold})
    return pd.DataFrame(rows, columns=[*STAGE_COLUMNS, "english_dev", "threshold"])


def mark_collapsed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a boolean ``collapsed`` column: every row of a collapsed stage."""
    flagged = collapsed_stages(frame)
    if flagged.empty:
        return frame.assign(collapsed=False)
    keys = set(map(tuple, flagged[STAGE_COLUMNS].itertuples(index=False)))
    return frame.assign(collapsed=[tuple(k) in keys for k in frame[STAGE_COLUMNS].itertuples(index=False)])


def render_collapsed(flagged: pd.DataFrame) -> str:
    if flagged.empty:
        return ""
    shown = flagged.assign(english_dev=flagged.english_dev.round(1), threshold=flagged.threshold.round(1))
    return ("### Collapsed seeds, left out of the contrasts they enter\n\nEnglish dev at chance (at most "
            f"{COLLAPSE_MARGIN:.0%} of the headroom above the task's chance score): the fine-tuning failed, so "
            "its zero-shot scores say nothing about the intermediate task. Re-run the stage with another seed or "
            "learning-rate range.\n\n" + shown.to_markdown(index=False) + "\n")
