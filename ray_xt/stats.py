"""The study's statistics: English-vs-target-language differences over seeds, bootstrap CIs, scale interaction.

Seeds are the unit of replication: each seed is a full pipeline run (intermediate and target training), so
the differences are paired by seed and resampled by seed (percentile bootstrap, fixed RNG seed so a report
is reproducible).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BOOTSTRAP_SAMPLES = 10_000


def bootstrap_ci(values, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (NaN with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail, method="lower")), float(np.percentile(means, 100 - tail, method="higher"))


def bootstrap_diff_ci(a, b, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """CI of mean(a) - mean(b) for independent groups (seeds of two scales), each resampled on its own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diff = (a[rng.integers(0, len(a), size=(samples, len(a)))].mean(1)
            - b[rng.integers(0, len(b), size=(samples, len(b)))].mean(1))
    tail = (1 - level) / 2 * 100
    return float(np.percentile(diff, tail, method="lower")), float(np.percentile(diff, 100 - tail, method="higher"))


def paired_differences(frame: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Per (scale, target, intermediate, language, seed): score under condition ``first`` minus ``second``.

    ``frame`` has one row per (scale, target, seed, condition, intermediate, language) with a ``score``.
    """
    keys = ["scale", "target", "intermediate", "language", "seed"]
    a = frame[frame.condition == first].set_index(keys)["score"]
    b = frame[frame.condition == second].set_index(keys)["score"]
    joined = pd.concat({"a": a, "b": b}, axis=1).dropna()
    return (joined["a"] - joined["b"]).rename("diff").reset_index()


def with_average_language(diffs: pd.DataFrame) -> pd.DataFrame:
    """Adds language 'avg (zero-shot)': per seed, the mean difference over the non-English languages."""
    zero_shot = diffs[diffs.language != "en"]
    avg = zero_shot.groupby(["scale", "target", "intermediate", "seed"], as_index=False)["diff"].mean()
    return pd.concat([diffs, avg.assign(language="avg (zero-shot)")], ignore_index=True)


def difference_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """Mean difference over seeds with its 95% bootstrap CI, per (scale, target, intermediate, language)."""
    rows = []
    for key, part in diffs.groupby(["scale", "target", "intermediate", "language"], sort=False):
        low, high = bootstrap_ci(part["diff"].to_numpy())
        rows.append(dict(zip(["scale", "target", "intermediate", "language"], key),
                         mean=part["diff"].mean(), ci_low=low, ci_high=high, seeds=len(part)))
    return pd.DataFrame(rows)


def scale_interaction(diffs: pd.DataFrame, small: str, large: str) -> pd.DataFrame:
    """(difference at ``large``) minus (difference at ``small``), per (target, intermediate, language), with CI."""
    rows = []
    for key, part in diffs.groupby(["target", "intermediate", "language"], sort=False):
        a = part[part.scale == large]["diff"].to_numpy()
        b = part[part.scale == small]["diff"].to_numpy()
        if len(a) == 0 or len(b) == 0:
            continue
        low, high = bootstrap_diff_ci(a, b)
        rows.append(dict(zip(["target", "intermediate", "language"], key), small=small, large=large,
                         interaction=a.mean() - b.mean(), ci_low=low, ci_high=high))
    return pd.DataFrame(rows)
