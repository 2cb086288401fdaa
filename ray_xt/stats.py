"""The study's statistics: intervals and tests that are valid with few seeds.

The unit of replication is the seed: each seed is a whole pipeline (intermediate and target training), and
its model is scored in every language, so languages are not independent replicates. Contrasts are paired by
seed (the same seed's English and target-language pipelines share their target-task data order and
initialisation), and:

- a per-seed difference gets a t interval with seeds − 1 degrees of freedom (a percentile bootstrap over three
  seeds can only span their min–max and covers far less than its nominal 95%: ``tests/test_stats.py``);
- the language-averaged contrast (a primary contrast) averages each seed's differences over the zero-shot
  languages, then takes the t interval over seeds (for these languages); ``language_sample_interval`` adds the
  languages' own variance, for a reader who treats XTREME's languages as a sample of languages;
- the scale interaction compares two independent groups of seeds (one per scale): a Welch t interval;
- a table of many (task, language) cells is corrected for multiplicity with Holm's step-down method.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

LEVEL = 0.95
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


def language_sample_interval(cells: pd.DataFrame, level: float = LEVEL) -> tuple[float, float]:
    """``two_component_interval`` of a (language × seed) table of differences (columns ``language``, ``seed``,
    ``diff``); languages missing a seed are left out."""
    grid = cells.pivot_table(index="language", columns="seed", values="diff", aggfunc="mean").to_numpy()
    if grid.ndim == 2 and np.isnan(grid).any():
        grid = grid[~np.isnan(grid).any(axis=1)]
    return two_component_interval(grid, level)


def two_component_interval(grid: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Interval of the mean of a languages × seeds grid for a reader who treats the languages as a sample of
    languages: a two-way random-effects model (language, seed, residual), its variance from the ANOVA mean squares
    (never below either one-factor variance) and a Cochran–Cox critical value (the two factors' t quantiles
    weighted by their mean squares: Satterthwaite's df overstates the seeds' few degrees of freedom and
    undercovers at three seeds; ``tests/test_stats.py`` simulates it). NaN below two languages or two seeds."""
    n_lang, n_seed = grid.shape if grid.ndim == 2 else (0, 0)
    if n_lang < 2 or n_seed < 2:
        return NO_INTERVAL, NO_INTERVAL
    mean = float(grid.mean())
    by_language, by_seed = grid.mean(axis=1), grid.mean(axis=0)
    ms_language = n_seed * float(((by_language - mean) ** 2).sum()) / (n_lang - 1)
    ms_seed = n_lang * float(((by_seed - mean) ** 2).sum()) / (n_seed - 1)
    residual = grid - by_language[:, None] - by_seed[None, :] + mean
    ms_residual = float((residual ** 2).sum()) / ((n_lang - 1) * (n_seed - 1))
    variance = max(ms_language + ms_seed - ms_residual, ms_language, ms_seed) / (n_lang * n_seed)
    if variance == 0:
        return mean, mean
    t_language, t_seed = (float(scipy_stats.t.ppf(0.5 + level / 2, df)) for df in (n_lang - 1, n_seed - 1))
    critical = (ms_language * t_language + ms_seed * t_seed) / (ms_language + ms_seed)
    half = critical * math.sqrt(variance)
    return mean - half, mean + half


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


_NORMAL_SPAN = 12.0  # |Z| beyond this carries < 1e-32 of the normal's mass
_NODES = 128  # Gauss–Legendre nodes per piece: the integrands are smooth on each piece (tested against quad)


def _rejection_probability(shift: float, critical: np.ndarray, df: float) -> np.ndarray:
    """P(|Z + shift| > critical · S) for Z standard normal and S² an independent χ²(df)/df, for each critical
    value: the power of a t test whose statistic is noncentral t(df, shift). Integrated over Z (the test rejects
    when S < |Z + shift| / critical: χ² tail probabilities, never the noncentral t's, which scipy returns as NaN
    far out), split where |Z + shift| turns."""
    critical = np.atleast_1d(np.asarray(critical, dtype=float))
    ends = sorted({-_NORMAL_SPAN, _NORMAL_SPAN, *([-shift] if abs(shift) < _NORMAL_SPAN else [])})
    x, w = np.polynomial.legendre.leggauss(_NODES)
    total = np.zeros_like(critical)
    for a, b in zip(ends, ends[1:]):
        z, weight = (b - a) / 2 * x + (a + b) / 2, (b - a) / 2 * w
        ratio = (z + shift)[None, :] / critical[:, None]
        inside = scipy_stats.chi2.cdf(df * ratio ** 2, df)  # P(S < |Z + shift| / critical)
        total += (inside * (weight * scipy_stats.norm.pdf(z))[None, :]).sum(axis=1)
    return total


def power(effect: float, seeds: int, alpha: float = 0.05, design: str = "paired") -> float:
    """Probability that a two-sided test at ``alpha`` rejects no difference when the true difference is
    ``effect`` (in units of the per-seed difference's sd). ``paired``: the t test over ``seeds`` paired
    differences (df = seeds − 1). ``welch``: Welch's test of two independent groups of ``seeds`` each (the
    scale interaction, both scales with that sd), integrating also over the split of the two sample variances,
    on which Welch's df depends: at few seeds it has much less power than the pooled t test."""
    if seeds < 2:
        return float("nan")
    if design == "paired":
        df = seeds - 1
        return float(_rejection_probability(effect * math.sqrt(seeds), scipy_stats.t.ppf(1 - alpha / 2, df), df)[0])
    if design != "welch":
        raise ValueError(f"design {design!r}: 'paired' or 'welch'")
    from scipy.special import roots_jacobi

    # V1 + V2 ~ χ²(2(n − 1)) and R = V1 / (V1 + V2) ~ Beta((n − 1)/2, (n − 1)/2) are independent; Welch's df is a
    # function of R alone: Gauss–Jacobi nodes over R (the Beta density is their weight), the integral over Z at each
    a = (seeds - 1) / 2
    x, w = roots_jacobi(_NODES // 2, a - 1, a - 1)
    r = (x + 1) / 2
    df = (seeds - 1) / (r * r + (1 - r) ** 2)
    reject = _rejection_probability(effect / math.sqrt(2 / seeds), scipy_stats.t.ppf(1 - alpha / 2, df), 2 * (seeds - 1))
    return float((w * reject).sum() / w.sum())


@functools.cache
def _detectable_in_sd(seeds: int, alpha: float, wanted: float, design: str) -> float:
    from scipy.optimize import brentq

    high = 1.0
    while power(high, seeds, alpha, design) < wanted:
        high *= 2
    return float(brentq(lambda e: power(e, seeds, alpha, design) - wanted, 1e-9, high, xtol=1e-6))


def detectable_difference(sd: float, seeds: int, alpha: float = 0.05, wanted_power: float = 0.8,
                          design: str = "paired") -> float:
    """The smallest true difference the study's test detects with ``wanted_power`` at level ``alpha`` (two-sided),
    given the per-seed difference's standard deviation ``sd`` (``power`` says which test ``design`` names)."""
    if seeds < 2:
        return float("inf")
    return _detectable_in_sd(seeds, alpha, wanted_power, design) * sd


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
    with the other primary contrasts, not here); the language average also gets the interval for a sample of
    languages (``language_sample_interval``: ``lang_low``, ``lang_high``)."""
    rows = []
    for key, part in diffs.groupby(["scale", "target", "intermediate", "language"], sort=False):
        ci = t_interval(part["diff"].to_numpy(), level)
        rows.append(dict(zip(["scale", "target", "intermediate", "language"], key), mean=ci.mean, ci_low=ci.low,
                         ci_high=ci.high, seeds=ci.n, df=ci.df, p=ci.p))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    cells = table.language != ZERO_SHOT_AVERAGE
    table["p_holm"] = np.nan
    table.loc[cells, "p_holm"] = holm(table.loc[cells, "p"].to_numpy())
    table["lang_low"], table["lang_high"] = np.nan, np.nan
    for i in table.index[~cells]:
        row = table.loc[i]
        part = diffs[(diffs.scale == row.scale) & (diffs.target == row.target) & (diffs.intermediate == row.intermediate)
                     & (diffs.language != "en") & (diffs.language != ZERO_SHOT_AVERAGE)]
        table.loc[i, ["lang_low", "lang_high"]] = language_sample_interval(part, level=level)
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
                         interaction=ci.mean, ci_low=ci.low, ci_high=ci.high, seeds=ci.n, df=ci.df, p=ci.p))
    return pd.DataFrame(rows)
