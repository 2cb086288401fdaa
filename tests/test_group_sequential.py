"""Seeds added while the answer is undecided: the boundary's levels, the family-wise error and the intervals'
coverage simulated with t statistics from few seeds, as a study computes them."""

import numpy as np
import pytest
from scipy import stats

from ray_xt.group_sequential import (
    SequentialRule,
    conditional_power,
    decide,
    interval_multiplier,
    nominal_levels,
    repeated_p_value,
    simulated_looks,
    spent,
)

RULE = SequentialRule(3, 10)


def test_the_spending_function_is_gsdesigns_lan_demets_obrien_fleming():
    # gsDesign::sfLDOF(0.025, t)$spend, per side: 0.0000074 at t = 0.25, 0.0015 at 0.5, 0.025 at 1
    assert spent(0.05, 0.25) / 2 == pytest.approx(7.4e-06, rel=0.02)
    assert spent(0.05, 0.5) / 2 == pytest.approx(0.00152, rel=0.02)
    assert spent(0.05, 1.0) == pytest.approx(0.05)


def test_the_levels_spend_exactly_alpha_on_fresh_null_paths():
    """One contrast monitored at every look, with data the levels were not counted on: 5% cross."""
    levels = np.array(nominal_levels(RULE.looks, 0.05))
    assert np.all(np.diff(levels) > 0) and levels[0] < 0.001  # O'Brien–Fleming: almost nothing spent early
    data = np.random.default_rng(7).standard_normal((60_000, RULE.max_seeds))
    crossed = np.zeros(len(data), bool)
    naive = np.zeros(len(data), bool)
    for k, n in enumerate(RULE.looks):
        p = stats.ttest_1samp(data[:, :n], 0, axis=1).pvalue
        crossed |= p <= levels[k]
        naive |= p <= 0.05
    assert abs(crossed.mean() - 0.05) < 0.004  # 3.5 Monte Carlo standard errors
    assert naive.mean() > 0.12  # what testing every round at 0.05 would let through


def _simulate(effects: np.ndarray, reps: int, seed: int, sd: float = 1.0):
    """Whole sequential studies: per look, each open contrast's t test; returns the family-wise error among null
    contrasts, each contrast's repeated-interval coverage, simultaneous coverage, and the seeds used / the most."""
    rng = np.random.default_rng(seed)
    m = len(effects)
    errors, covered, all_covered, used = 0, np.zeros(m), 0, 0
    for _ in range(reps):
        data = rng.normal(effects, sd, size=(RULE.max_seeds, m))
        history = {int(j): h for j, h in simulated_looks(data, RULE).items()}
        final = decide(history, RULE)
        errors += any(final[j].state == "decided" and effects[j] == 0 for j in range(m))
        inside = []
        for j in range(m):
            look = len(history[j]) - 1
            n = RULE.looks[look]
            x = data[:n, j]
            se = x.std(ddof=1) / np.sqrt(n)
            inside.append((abs(x.mean() - effects[j]) <= interval_multiplier(n - 1, look, RULE.looks, 0.05) * se,
                           abs(x.mean() - effects[j]) <= interval_multiplier(n - 1, look, RULE.looks, 0.05 / m) * se))
            used += n
        covered += [a for a, _ in inside]
        all_covered += all(b for _, b in inside)
    return errors / reps, covered / reps, all_covered / reps, used / (reps * m * RULE.max_seeds)


def test_family_wise_error_stays_nominal_and_intervals_cover_with_no_effect():
    error, coverage, simultaneous, used = _simulate(np.zeros(4), 1500, seed=11)
    assert error <= 0.05 + 0.011  # 2 standard errors of 1,500 studies
    assert coverage.min() >= 0.95 - 0.011 and simultaneous >= 0.95 - 0.011
    assert used < 0.6  # futility stops most null contrasts early


def test_a_true_effect_is_found_early_and_the_nulls_beside_it_keep_their_error():
    effects = np.array([0.0, 0.0, 0.0, 1.5])  # 1.5 seed sds
    error, coverage, _, used = _simulate(effects, 800, seed=12)
    assert error <= 0.05 + 0.016
    assert coverage.min() >= 0.95 - 0.016
    assert used < 0.7


def test_decisions_replayed_from_the_same_p_values_are_the_same_and_holm_passes_alpha_on():
    history = {"strong": [1e-4, 1e-7], "moderate": [0.004, 0.0015], "null": [0.6, 0.9]}
    first = decide(history, RULE)
    assert decide({k: list(v) for k, v in history.items()}, RULE) == first
    assert first["strong"].state == "decided" and first["null"].state == "futile"
    assert first["strong"].holm_p <= first["moderate"].holm_p
    # alone, "moderate" is judged at the full α; beside a null it shares it (Holm)
    assert decide({"moderate": history["moderate"]}, RULE)["moderate"].holm_p <= first["moderate"].holm_p


def test_repeated_p_values_and_conditional_power_behave():
    assert repeated_p_value([0.5, 0.5], RULE.looks) == 1.0
    # at 3 of 10 seeds O'Brien–Fleming spends ~1e-5 of 0.05: only an overwhelming first look crosses
    assert repeated_p_value([1e-9], RULE.looks) <= 0.05 < repeated_p_value([1e-4], RULE.looks)
    one = repeated_p_value([0.01], RULE.looks)
    assert repeated_p_value([0.01, 0.5], RULE.looks) == one  # the smallest α crossed at any look
    assert conditional_power(1e-6, 2, RULE.looks, 0.05) > 0.9 > 0.1 > conditional_power(0.9, 2, RULE.looks, 0.05)
