"""The study's statistics: intervals and tests that are valid with few seeds.

The unit of replication is the seed: each seed is a whole pipeline (intermediate and target training), and
its model is scored in every language, so languages are not independent replicates. Contrasts are paired by
seed (the same seed's English and target-language pipelines share their target-task data order and
initialisation), and:

- a per-seed difference gets a t interval with seeds − 1 degrees of freedom (a percentile bootstrap over three
  seeds can only span their min–max and covers far less than its nominal 95%: ``tests/test_stats.py``);
- the language-averaged contrast (a primary contrast) averages each seed's differences over the zero-shot
  languages, then takes the t interval over seeds; ``hierarchical_bootstrap`` also resamples languages, for a
  reader who treats XTREME's languages as a sample of languages;
- the scale interaction compares two independent groups of seeds (one per scale): a Welch t interval;
- a table of many (task, language) cells is corrected for multiplicity with Holm's step-down method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 10_000
ZERO_SHOT_AVERAGE = "avg (zero-shot)"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    p: float  # two-sided, against no difference
    n: int  # seeds (per group, for two groups the smaller)
    df: float


NO_INTERVAL = float("nan")


def t_interval(values, level: float = LEVEL) -> Interval:
    """Mean of paired differences with its t interval (df = n − 1) and two-sided p (NaN interval below n = 2)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else NO_INTERVAL
    if n < 2:
        return Interval(mean, NO_INTERVAL, NO_INTERVAL, NO_INTERVAL, n, NO_INTERVAL)
    se = float(x.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return Interval(mean, mean, mean, p, n, n - 1)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * scipy_stats.t.sf(abs(mean) / se, n - 1))
    return Interval(mean, mean - half, mean + half, p, n, n - 1)


def welch_interval(a, b, level: float = LEVEL) -> Interval:
    """mean(a) − mean(b) for two independent groups (the seeds of two scales): Welch's t interval and p."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else NO_INTERVAL
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, NO_INTERVAL, NO_INTERVAL, NO_INTERVAL, min(len(a), len(b)), NO_INTERVAL)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, diff, diff, 1.0 if diff == 0 else 0.0, min(len(a), len(b)), len(a) + len(b) - 2)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * scipy_stats.t.sf(abs(diff) / se, df))
    return Interval(diff, diff - half, diff + half, p, min(len(a), len(b)), float(df))


def hierarchical_bootstrap(cells: pd.DataFrame, samples: int = BOOTSTRAP_SAMPLES, level: float = LEVEL,
                           seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean over a (language × seed) grid of differences (columns ``language``,
    ``seed``, ``diff``), resampling languages and, independently, seeds (both crossed factors); NaN below two
    of either. Wider than the t interval over seeds when languages disagree."""
    grid = cells.pivot_table(index="language", columns="seed", values="diff", aggfunc="mean").to_numpy()
    if np.isnan(grid).any():
        grid = grid[~np.isnan(grid).any(axis=1)]
    n_lang, n_seed = grid.shape if grid.ndim == 2 else (0, 0)
    if n_lang < 2 or n_seed < 2:
        return NO_INTERVAL, NO_INTERVAL
    rng = np.random.default_rng(seed)
    langs = rng.integers(0, n_lang, size=(samples, n_lang))
    seeds = rng.integers(0, n_seed, size=(samples, n_seed))
    means = np.array([grid[np.ix_(li, si)].mean() for li, si in zip(langs, seeds)])
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def detectable_difference(sd: float, seeds: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference a two-sided paired t test over ``seeds`` seeds detects with
    ``power`` at level ``alpha``, given the per-seed difference's standard deviation (exact, from the noncentral t
    distribution)."""
    from scipy.optimize import brentq

    if seeds < 2:
        return float("inf")
    df = seeds - 1
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        shift = effect * math.sqrt(seeds)  # in units of sd
        reached = scipy_stats.nct.sf(critical, df, shift) + scipy_stats.nct.cdf(-critical, df, shift)
        return (1.0 if math.isnan(reached) else reached) - power  # NaN far in the tail, where power is 1

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 1e-9, high) * sd)


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
    zero_shot = diffs[(diffs.language != "en") & (diffs.language != ZERO_SHOT_AVERAGE)]
    avg = zero_shot.groupby(["scale", "target", "intermediate", "seed"], as_index=False)["diff"].mean()
    return pd.concat([diffs, avg.assign(language=ZERO_SHOT_AVERAGE)], ignore_index=True)


def difference_table(diffs: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per (scale, target, intermediate, language): mean difference over seeds, its t interval, n, p, and the
    Holm-adjusted p over the table's per-language cells (the language average, a primary contrast, is adjusted
    with the other primary contrasts, not here); the language average also gets the hierarchical bootstrap."""
    rows = []
    for key, part in diffs.groupby(["scale", "target", "intermediate", "language"], sort=False):
        ci = t_interval(part["diff"].to_numpy(), level)
        rows.append(dict(zip(["scale", "target", "intermediate", "language"], key), mean=ci.mean, ci_low=ci.low,
                         ci_high=ci.high, seeds=ci.n, p=ci.p))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    cells = table.language != ZERO_SHOT_AVERAGE
    table["p_holm"] = np.nan
    table.loc[cells, "p_holm"] = holm(table.loc[cells, "p"].to_numpy())
    table["boot_low"], table["boot_high"] = np.nan, np.nan
    for i in table.index[~cells]:
        row = table.loc[i]
        part = diffs[(diffs.scale == row.scale) & (diffs.target == row.target) & (diffs.intermediate == row.intermediate)
                     & (diffs.language != "en") & (diffs.language != ZERO_SHOT_AVERAGE)]
        table.loc[i, ["boot_low", "boot_high"]] = hierarchical_bootstrap(part, level=level)
    return table


def scale_interaction(diffs: pd.DataFrame, small: str, large: str, level: float = LEVEL) -> pd.DataFrame:
    """(difference at ``large``) minus (difference at ``small``), per (target, intermediate, language), with the
    Welch interval over the two scales' seeds."""
    rows = []
    for key, part in diffs.groupby(["target", "intermediate", "language"], sort=False):
        a = part[part.scale == large]["diff"].to_numpy()
        b = part[part.scale == small]["diff"].to_numpy()
        if len(a) == 0 or len(b) == 0:
            continue
        ci = welch_interval(a, b, level)
        rows.append(dict(zip(["target", "intermediate", "language"], key), small=small, large=large,
                         interaction=ci.mean, ci_low=ci.low, ci_high=ci.high, seeds=ci.n, p=ci.p))
    return pd.DataFrame(rows)
