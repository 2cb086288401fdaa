"""Seeds added while the answer is undecided: a group-sequential test per primary contrast with a Lan–DeMets
O'Brien–Fleming-type alpha-spending boundary, Holm over the family, and a non-binding futility stop.

A look is made after every round of seeds. Look k has information fraction t_k = n_k / n_max (seeds so far over
the most the study allows). The boundary spends, on each side, 2 − 2 Φ(z_{1−α/4} / √t) of α/2 (Lan &
DeMets 1983); the nominal level of each look comes from the joint law of the standardised statistics under no
effect. With 3–10 seeds the statistics are t, not normal: the normal theory's levels (the recursive integration
of Armitage, McPherson & Rowe 1969, as gsDesign computes them) applied to t p-values let 5.8% of null contrasts
through at α 0.05 with looks at 3..10 seeds (simulated, ``docs/statistics.md``). The levels are therefore counted
on simulated null paths of the one-sample t statistic, whose law does not depend on the seeds' sd: exact up to
Monte Carlo error. No Python library computes group-sequential boundaries; scipy does the distributions.

What the report prints is valid however the study stopped:

- the **repeated p-value** of a contrast: the smallest α at which its boundary was crossed at some look so far
  (Jennison & Turnbull 2000, ch. 9); Holm's adjustment over the family on these is the graphical group-sequential
  Holm procedure (Maurer & Bretz 2013): a rejected contrast's α is passed to the others at every look;
- the **repeated confidence interval** at its last look: mean ± t_{df}(1 − ν_k/2)·se, with ν_k the look's nominal
  level at α (per contrast) or α/m (simultaneous, Bonferroni over the family's m contrasts).

Futility is non-binding (stopping for it never raises the error rate): a contrast stops when, continuing on its
current trend to n_max seeds, it would cross the final boundary with probability below ``futility_power``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as scipy_stats

ALPHA_GRID = np.geomspace(1e-5, 0.999, 120)  # the alphas the nominal levels are tabled at (repeated p-values)
NULL_PATHS = 100_000  # simulated seed sequences under no effect: the levels' Monte Carlo error is ±0.0014 at α 0.05


def spent(alpha: float, fraction: float) -> float:
    """Two-sided alpha spent by information fraction ``fraction``: each side spends α/2 by Lan–DeMets' O'Brien–
    Fleming-type function, 2 − 2 Φ(z_{1−α/4} / √t) (the convention of gsDesign's sfLDOF and ldbounds)."""
    return float(2 * (2 - 2 * scipy_stats.norm.cdf(scipy_stats.norm.ppf(1 - alpha / 4) / np.sqrt(fraction))))


@lru_cache(maxsize=64)
def _null_p_values(looks: tuple[int, ...]) -> np.ndarray:
    """One-sample t test p-values at each look (columns) of NULL_PATHS seed sequences with no effect: the t
    statistic does not depend on the seeds' sd, so these are its exact null paths (a fixed generator seed makes
    the levels the same in every run)."""
    data = np.random.default_rng(20261207).standard_normal((NULL_PATHS, looks[-1]))
    out = np.empty((NULL_PATHS, len(looks)))
    for k, n in enumerate(looks):
        x = data[:, :n]
        t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
        out[:, k] = 2 * scipy_stats.t.sf(np.abs(t), n - 1)
    return out


def _levels_from_paths(paths: np.ndarray, fractions: tuple[float, ...], alpha: float) -> list[float]:
    alive = np.ones(len(paths), dtype=bool)
    levels, previous = [], 0.0
    for k, t in enumerate(fractions):
        so_far = spent(alpha, t)
        budget = int(round((so_far - previous) * len(paths)))  # paths allowed to cross first here
        previous = so_far
        candidates = np.sort(paths[alive, k])
        level = float(candidates[budget - 1]) if 0 < budget <= len(candidates) else (
            0.0 if budget <= 0 else 1.0)
        levels.append(level)
        alive &= ~(paths[:, k] <= level)
    return levels


@lru_cache(maxsize=4096)
def nominal_levels(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """The two-sided nominal level of each look's t test p-value (looks after ``looks[k]`` seeds; information
    fraction seeds / the last look's): under no effect the probability of crossing first at look k equals
    ``spent(alpha, t_k) − spent(alpha, t_{k−1})``, counted over simulated null paths of the t statistic."""
    fractions = tuple(n / looks[-1] for n in looks)
    return tuple(_levels_from_paths(_null_p_values(tuple(looks)), fractions, alpha))


@lru_cache(maxsize=64)
def _level_table(looks: tuple[int, ...]) -> np.ndarray:
    """Nominal levels, one row per alpha of ALPHA_GRID, one column per look; monotone in alpha."""
    table = np.array([nominal_levels(looks, float(a)) for a in ALPHA_GRID])
    return np.maximum.accumulate(np.maximum(table, 1e-300), axis=0)


def repeated_p_value(pvalues: list[float], looks: tuple[int, ...]) -> float:
    """The smallest α at which a contrast with these per-look p-values (at ``looks[:len(pvalues)]`` seeds)
    crossed its boundary at some look; 1 where it would not at any α in the table."""
    table = _level_table(tuple(looks))
    best = 1.0
    for k, p in enumerate(pvalues):
        if p is None or not np.isfinite(p):
            continue
        column = table[:, k]
        if p <= column[0]:
            return float(ALPHA_GRID[0])
        if p > column[-1]:
            continue
        # the nominal level grows with alpha: interpolate log alpha at log p
        best = min(best, float(np.exp(np.interp(np.log(p), np.log(column), np.log(ALPHA_GRID)))))
    return best


def interval_multiplier(df: float, look: int, looks: tuple[int, ...], alpha: float) -> float:
    """The t quantile a repeated confidence interval at look ``look`` (0-based) uses at level 1 − alpha."""
    nu = nominal_levels(tuple(looks), alpha)[look]
    return float(scipy_stats.t.ppf(1 - nu / 2, df)) if nu > 0 else np.inf


def conditional_power(p: float, look: int, looks: tuple[int, ...], alpha: float) -> float:
    """Probability of crossing the final boundary at level ``alpha`` if the effect is what this look estimates
    (the current trend), from the look's two-sided p-value (normal approximation: it only decides futility)."""
    t = looks[look] / looks[-1]
    if t >= 1:
        return 0.0
    z = scipy_stats.norm.isf(max(p, 1e-300) / 2)
    final = scipy_stats.norm.isf(max(nominal_levels(tuple(looks), alpha)[-1], 1e-300) / 2)
    return float(scipy_stats.norm.sf((final - z / np.sqrt(t)) / np.sqrt(1 - t)))


@dataclass(frozen=True)
class SequentialRule:
    """When to add seeds: looks at ``min_seeds``, ``min_seeds`` + 1, ..., ``max_seeds``."""

    min_seeds: int
    max_seeds: int
    alpha: float = 0.05
    futility_power: float = 0.1

    @property
    def looks(self) -> tuple[int, ...]:
        return tuple(range(self.min_seeds, self.max_seeds + 1))

    def describe(self) -> str:
        return (f"seeds added one round at a time from {self.min_seeds} to at most {self.max_seeds}; after each "
                f"round every undecided primary contrast is tested against a Lan–DeMets O'Brien–Fleming-type "
                f"alpha-spending boundary (two-sided α {self.alpha}, information = seeds / {self.max_seeds}), Holm "
                f"over its family on repeated p-values; it stops when it crosses (decided) or when its conditional "
                f"power on the current trend falls below {self.futility_power} (futile, non-binding), else it gets "
                f"one more seed")


@dataclass(frozen=True)
class Decision:
    state: str  # "decided" (crossed), "futile", "continue" (more seeds), "at max" (no more seeds allowed)
    look: int  # 0-based index of the look the state was reached at (or the latest look)
    repeated_p: float
    holm_p: float


def decide(history: dict[str, list[float]], rule: SequentialRule) -> dict[str, Decision]:
    """Every contrast's state after replaying its per-look p-values (``history[name][k]`` at look k; a contrast's
    list ends where it stopped), Holm over the family on repeated p-values at each look."""
    from ray_xt.stats import holm

    names = list(history)
    schedule = rule.looks
    looks = max((len(v) for v in history.values()), default=0)
    stopped: dict[str, tuple[str, int]] = {}
    repeated = dict.fromkeys(names, 1.0)
    adjusted = dict.fromkeys(names, 1.0)
    for k in range(looks):
        for name in names:
            if name not in stopped and len(history[name]) > k:
                repeated[name] = repeated_p_value(history[name][: k + 1], schedule)
        holm_p = holm(np.array([repeated[n] for n in names]))
        adjusted = dict(zip(names, (float(p) for p in holm_p)))
        rejected = sum(p <= rule.alpha for p in adjusted.values())
        local_alpha = rule.alpha / max(1, len(names) - rejected)
        for name in names:
            if name in stopped or len(history[name]) <= k:
                continue
            if adjusted[name] <= rule.alpha:
                stopped[name] = ("decided", k)
            elif k == len(schedule) - 1:
                stopped[name] = ("at max", k)
            elif conditional_power(history[name][k], k, schedule, local_alpha) < rule.futility_power:
                stopped[name] = ("futile", k)
    out = {}
    for n in names:
        state, look = stopped.get(n, ("continue", len(history[n]) - 1))
        if adjusted[n] <= rule.alpha:  # a contrast stopped as futile may still be rejected on α passed to it
            state = "decided"
        out[n] = Decision(state, look, repeated[n], adjusted[n])
    return out


def simulated_looks(data: np.ndarray, rule: SequentialRule) -> dict[str, list[float]]:
    """One simulated study under the rule: ``data`` holds per-seed differences (``max_seeds`` rows, one column per
    contrast); each open contrast's one-sample t test at each look, as long as it stays open."""
    history: dict[str, list[float]] = {str(j): [] for j in range(data.shape[1])}
    open_ = set(history)
    for n in rule.looks:
        p = scipy_stats.ttest_1samp(data[:n], 0, axis=0).pvalue
        for j in open_:
            history[j].append(float(p[int(j)]))
        state = decide(history, rule)
        open_ = {j for j in open_ if state[j].state == "continue"}
        if not open_:
            break
    return history


def expected_seed_share(rule: SequentialRule, contrasts: int, effect_in_sd: float, studies: int = 200,
                        seed: int = 0) -> float:
    """The share of the most seeds (``max_seeds`` per contrast) a family of ``contrasts`` independent contrasts,
    each with this true effect (in seed sds), uses under the rule: simulated whole studies."""
    rng = np.random.default_rng(seed)
    used = 0
    for _ in range(studies):
        history = simulated_looks(rng.normal(effect_in_sd, 1.0, size=(rule.max_seeds, contrasts)), rule)
        used += sum(rule.looks[len(h) - 1] for h in history.values())
    return used / (studies * contrasts * rule.max_seeds)
