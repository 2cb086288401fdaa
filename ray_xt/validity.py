"""The micro world's validity check: zero-shot scores beside chance, and a verdict on the issue's two targets.

Chance is what a model that ignores its input scores (``constant_predictor_score``). "Well above chance" is made
testable for accuracy tasks: a language's score (the mean over the check's seeds) is compared with chance in
units of the binomial standard error at chance over that language's eval examples,
z = (score - chance) / sqrt(chance * (1 - chance) / n). The seeds score the same examples, so n is the number
of examples, not examples x seeds: the test is conservative about seeds and exact about example sampling.
F1 tasks (tagging) have no per-example binomial, so their margins are reported and not tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ray_xt.records import StageRecord
from ray_xt.report import scores_frame

WELL_ABOVE_Z = 3.0  # one-sided p ~ 0.001
ABOVE_Z = 1.645  # one-sided p = 0.05
AVERAGE_ROW = "avg (zero-shot)"


def constant_predictor_score(root: Path, task) -> float:
    """Chance for the validity check: the task's metric for the most frequent label predicted everywhere
    (English dev) -- what a model that ignores its input scores. Classification: the majority-class rate;
    tagging: seqeval F1 of tagging every word with the most frequent tag."""
    from collections import Counter

    from ray_xt.data import read_examples
    from ray_xt.score import tagging_f1

    examples = read_examples(root, task, task.eval_split, ["en"])
    if task.family == "tagging":
        majority = Counter(t for e in examples for t in e["tags"]).most_common(1)[0][0]
        return tagging_f1([e["tags"] for e in examples], [[majority] * len(e["tags"]) for e in examples])["f1"] / 100
    labels = [e["label"] for e in examples]
    return max(labels.count(v) for v in set(labels)) / len(labels)


def validity_table(records: list[StageRecord], chance: dict[str, float], scales: list[str] | None = None) -> pd.DataFrame:
    """Zero-shot scores per language (rows) and task/scale (columns) beside each task's chance level
    (``constant_predictor_score``: what a model that ignores its input scores)."""
    frame = scores_frame(records)
    frame = frame[frame.condition == "none"]
    table = frame.pivot_table(index="language", columns=["target", "scale"], values="score", aggfunc="mean")
    rank = {s: i for i, s in enumerate(scales or [])}
    columns = sorted(table.columns, key=lambda c: (list(chance).index(c[0]) if c[0] in chance else 0, rank.get(c[1], 0)))
    table = table[columns]
    table.columns = [f"{task}/{scale}" for task, scale in columns]
    langs = [lang for lang in ["en"] if lang in table.index] + sorted(lang for lang in table.index if lang != "en")
    table = table.loc[langs]
    for task, rate in chance.items():
        table[f"{task} chance"] = 100.0 * rate
    zero_shot = [lang for lang in langs if lang != "en"]
    if zero_shot:
        table.loc[AVERAGE_ROW] = table.loc[zero_shot].mean()
    return table.round(1)


@dataclass(frozen=True)
class LanguageVerdict:
    task: str
    language: str
    score: float  # percent
    chance: float  # percent
    examples: int | None  # None: an F1 task, not tested

    @property
    def margin(self) -> float:
        return self.score - self.chance

    @property
    def z(self) -> float | None:
        if self.examples is None:
            return None
        p = self.chance / 100.0
        if p <= 0.0 or p >= 1.0:
            return math.inf if self.margin > 0 else 0.0
        return self.margin / (100.0 * math.sqrt(p * (1 - p) / self.examples))

    @property
    def level(self) -> str:
        if self.z is None:
            return "F1 margin, not tested"
        if self.z >= WELL_ABOVE_Z:
            return "well above chance"
        return "above chance" if self.z >= ABOVE_Z else "not above chance"


def language_verdicts(table: pd.DataFrame, scale: str, examples: dict[tuple[str, str], int | None]) -> list[LanguageVerdict]:
    """One verdict per (task, zero-shot language) at ``scale``, from ``validity_table``'s output;
    ``examples[(task, language)]`` is the number of eval examples scored (None for an F1 task)."""
    verdicts = []
    for column in table.columns:
        task, _, column_scale = column.partition("/")
        if column_scale != scale:
            continue
        for language, score in table[column].items():
            if language in ("en", AVERAGE_ROW) or pd.isna(score):
                continue
            verdicts.append(LanguageVerdict(task, language, float(score), float(table[f"{task} chance"].iloc[0]),
                                            examples[(task, language)]))
    return verdicts


def scale_averages(table: pd.DataFrame, scales: list[str]) -> dict[str, float]:
    """Each scale's zero-shot average over the check's tasks (the mean of the tasks' average rows)."""
    averages = {}
    for scale in scales:
        columns = [c for c in table.columns if c.endswith(f"/{scale}")]
        if columns:
            averages[scale] = float(table.loc[AVERAGE_ROW, columns].mean())
    return averages


def validity_verdict(table: pd.DataFrame, scales: list[str], examples: dict[tuple[str, str], int | None]) -> str:
    """Markdown: per language at the largest scale (the last of ``scales``, which the check lists smallest
    first), score, chance, margin, z and level; then whether each of the issue's two targets is met ("well
    above chance on every synthetic language at the largest scale" on every accuracy task; "larger scales
    transfer better on average": the tasks' mean zero-shot average rises at each step up the scale ladder)."""
    largest = scales[-1]
    verdicts = language_verdicts(table, largest, examples)
    rows = ["| task | language | score | chance | margin | z | verdict |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in verdicts:
        z = "–" if v.z is None else f"{v.z:.1f}"
        n = "" if v.examples is None else f" (n={v.examples})"
        rows.append(f"| {v.task} | {v.language} | {v.score:.1f} | {v.chance:.1f} | {v.margin:+.1f} | {z}{n} | {v.level} |")
    short = [v for v in verdicts if v.z is not None and v.level != "well above chance"]
    tested = sorted({v.task for v in verdicts if v.z is not None})
    lines = [f"Verdict at {largest} (the largest scale); z = (score - chance) / the binomial standard error at "
             f"chance over the language's n eval examples; well above chance: z >= {WELL_ABOVE_Z:g}, above: "
             f"z >= {ABOVE_Z:g}.", "", *rows, ""]
    if not tested:
        lines.append("Every synthetic language well above chance: not tested (no accuracy task in the check).")
    elif short:
        listed = "; ".join(f"{v.task} {v.language} {v.margin:+.1f} (z {v.z:.1f}, {v.level})" for v in short)
        lines.append(f"Every synthetic language well above chance at {largest} ({', '.join(tested)}): "
                     f"**not met** — {listed}.")
    else:
        lines.append(f"Every synthetic language well above chance at {largest} ({', '.join(tested)}): **met**.")
    averages = scale_averages(table, scales)
    steps = " -> ".join(f"{s} {a:.1f}" for s, a in averages.items())
    values = list(averages.values())
    if len(values) < 2:
        lines.append(f"Larger scales transfer better on average: not tested (one scale: {steps}).")
    else:
        rising = all(b > a for a, b in zip(values, values[1:]))
        lines.append(f"Larger scales transfer better on average (mean zero-shot average over the tasks): {steps}: "
                     f"**{'met' if rising else 'not met'}**.")
    return "\n".join(lines)


def eval_example_counts(root: Path, tasks: dict, languages: list[str]) -> dict[tuple[str, str], int | None]:
    """How many eval examples each (task, language) scored; None for F1 tasks (not tested)."""
    from ray_xt.data import read_examples

    return {(name, lang): (len(read_examples(root, task, task.eval_split, [lang])) if task.metric == "accuracy" else None)
            for name, task in tasks.items() for lang in languages}
