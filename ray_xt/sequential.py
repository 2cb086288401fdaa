"""Seeds added while a primary contrast is undecided (``seeds: {min, max}``): the looks replayed from the finished
stages' records, each contrast's decision (``ray_xt.group_sequential``), and the stages the next round needs.

Seeds 0..min−1 run for every stage. Look k is made once every stage its still-open contrasts need at seeds
0..n_k−1 has finished; a contrast that stays open gets seed n_k: the stages it needs at that seed (its two
conditions' target stages for its target, intermediate task and scale(s), and what they depend on). The replay
reads only records, so a resumed study reaches the same decisions and asks for the same stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ray_xt.contrasts import SAME_DATA, TRANSFER, PrimaryRow, primary_rows
from ray_xt.group_sequential import Decision, SequentialRule, decide
from ray_xt.records import StageRecord
from ray_xt.stages import Stage


def rule_of(cfg) -> SequentialRule:
    s = cfg.sequential
    return SequentialRule(s.min, s.max, s.alpha, s.futility_power)


def row_name(contrast_title: str, target: str, intermediate: str, scale: str) -> str:
    return f"{contrast_title} | {target} | {intermediate} | {scale}"


def _name(row: PrimaryRow) -> str:
    return row_name(row.contrast.title, row.target, row.intermediate, row.scale)


def _row_scales(row: PrimaryRow) -> tuple[str, ...]:
    return tuple(row.scale.split(" − ")) if row.interaction else (row.scale,)


def stages_for(row: PrimaryRow, stages: list[Stage], seed: int) -> set[Stage]:
    """The stages a contrast needs at one seed: both conditions' scored stages for its target, intermediate task
    and scale(s), and everything they depend on."""
    c = row.contrast

    def side(stage: Stage, group: str) -> bool:
        if group == "none":
            return stage.upstream is None
        return stage.condition.group == group and stage.intermediate_task == row.intermediate

    wanted = {s for s in stages if s.scored and s.seed == seed and s.task == row.target
              and s.scale in _row_scales(row) and (side(s, c.first) or side(s, c.second))}
    closure, todo = set(), list(wanted)
    while todo:
        stage = todo.pop()
        if stage not in closure:
            closure.add(stage)
            todo += list(stage.depends_on)
    return closure


def look_p_values(records: list[StageRecord], seeds_below: int) -> dict[str, tuple[float, pd.Series | None]]:
    """Each primary row's p-value (and its headline row) from the seeds below ``seeds_below``."""
    from ray_xt.contrasts import declared
    from ray_xt.headline import primary_table
    from ray_xt.report.frames import scores_frame, statistics
    from ray_xt.seed_checks import mark_collapsed

    frame = scores_frame(records)
    if frame.empty:
        return {}
    frame = frame[frame.seed < seeds_below]
    frame = mark_collapsed(frame)
    kept = frame[~frame.collapsed].drop(columns="collapsed")
    if kept.empty:
        return {}
    contrasts = declared(set(kept.condition))
    table = primary_table(statistics(kept, contrasts), contrasts)
    return {row_name(r.contrast, r.target, r.intermediate, r.scale): (float(r.p), r) for _, r in table.iterrows()}


@dataclass
class SequentialState:
    rule: SequentialRule
    rows: list[PrimaryRow]
    history: dict[str, list[float]] = field(default_factory=dict)  # per row, its p-value at each look it was open
    decisions: dict[str, Decision] = field(default_factory=dict)
    wanted: set[Stage] = field(default_factory=set)  # every stage the looks so far ask for
    looks_made: int = 0
    rows_at: dict[int, dict] = field(default_factory=dict)  # seeds -> each row's (p, headline row) at that look

    @property
    def finished(self) -> bool:
        return bool(self.decisions) and all(d.state != "continue" for d in self.decisions.values())

    def seeds_of(self, name: str) -> int:
        """Seeds the row's contrast used: the look it stopped at (or the latest)."""
        return self.rule.looks[len(self.history[name]) - 1] if self.history.get(name) else 0

    def open_rows(self) -> list[PrimaryRow]:
        return [r for r in self.rows if _name(r) not in self.decisions or
                self.decisions[_name(r)].state == "continue"]


def replay(cfg, stages: list[Stage], records: dict[str, StageRecord]) -> SequentialState:
    """The looks the finished records allow, in order, and the stages the study needs so far."""
    rule = rule_of(cfg)
    state = SequentialState(rule, primary_rows(cfg))
    state.history = {_name(r): [] for r in state.rows}
    state.wanted = {s for s in stages if s.seed < rule.min_seeds}
    for k, n in enumerate(rule.looks):
        open_rows = state.open_rows()
        needed = set().union(*(stages_for(r, stages, seed) for r in open_rows for seed in range(n)))
        if any(s.key not in records for s in needed):
            break  # this look waits for its stages
        found = state.rows_at[n] = look_p_values(list(records.values()), n)
        for row in open_rows:
            p = found.get(_name(row), (np.nan, None))[0]
            state.history[_name(row)].append(1.0 if not np.isfinite(p) else p)  # no data: no evidence
        state.decisions = {}
        for family in (TRANSFER, SAME_DATA):  # Holm within each family, as the headline
            names = [_name(r) for r in state.rows if r.family == family]
            state.decisions.update(decide({name: state.history[name] for name in names}, rule))
        state.looks_made = k + 1
        if state.finished or k == len(rule.looks) - 1:
            break
        for row in state.open_rows():  # one more seed for each contrast still open
            state.wanted |= stages_for(row, stages, n)
    return state


def sequential_rows(state: SequentialState) -> pd.DataFrame:
    """The headline's rows with what a sequential design may claim: repeated p-values, Holm on them, and repeated
    confidence intervals (95% per contrast; simultaneous: α/m over its family) at each contrast's last look (its
    headline row as the replay computed it there)."""
    from scipy import stats

    from ray_xt.group_sequential import interval_multiplier
    from ray_xt.stats import LEVEL

    out = []
    sizes = {family: sum(r.family == family for r in state.rows) for family in (TRANSFER, SAME_DATA)}
    for row in state.rows:
        name = _name(row)
        if not state.history.get(name):
            continue
        look = len(state.history[name]) - 1
        n = state.rule.looks[look]
        found = state.rows_at[n].get(name)
        if found is None or found[1] is None:
            continue
        r, decision = found[1], state.decisions[name]
        # the standard error behind the row's fixed-sample t interval (at the headline's LEVEL)
        half = (r["mean"] - r["ci_low"]) / stats.t.ppf(0.5 + LEVEL / 2, r["df"]) if pd.notna(r["ci_low"]) else np.nan

        def rci(alpha: float, r=r, half=half, look=look) -> tuple[float, float]:
            width = half * interval_multiplier(r["df"], look, state.rule.looks, alpha) if pd.notna(half) else np.nan
            return r["mean"] - width, r["mean"] + width

        (lo, hi), (slo, shi) = rci(state.rule.alpha), rci(state.rule.alpha / max(1, sizes[row.family]))
        out.append({**r.to_dict(), "ci_low": lo, "ci_high": hi, "sim_low": slo, "sim_high": shi,
                    "p": decision.repeated_p, "p_holm": decision.holm_p, "family": row.family,
                    "looks": look + 1, "seeds": n, "decision": decision.state})
    return pd.DataFrame(out)


def render_sequential(state: SequentialState) -> str:
    """The rule, the rounds and where each contrast stopped."""
    lines = [f"## Sequential seeds\n\nRule: {state.rule.describe()}.\n",
             f"Looks made: {state.looks_made} (at {', '.join(str(n) for n in state.rule.looks[:state.looks_made])} "
             "seeds). The headline's p-values are repeated p-values with Holm's adjustment on them and its "
             "intervals are repeated confidence intervals: valid whenever the study stopped (docs/statistics.md, "
             "\"Sequential seeds\").\n",
             "| contrast | target | intermediate | scale | looks | seeds | decision | repeated p | Holm |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in state.rows:
        name = _name(row)
        d = state.decisions.get(name)
        if d is None:
            continue
        lines.append(f"| {row.contrast.title} | {row.target} | {row.intermediate} | {row.scale} | "
                     f"{len(state.history[name])} | {state.seeds_of(name)} | {d.state} | {d.repeated_p:.3g} | "
                     f"{d.holm_p:.3g} |")
    return "\n".join(lines) + "\n"


def looks_of(cfg, records: list[StageRecord]) -> SequentialState | None:
    """A sequential study's looks, replayed from its records (None for a study with fixed seeds)."""
    if cfg.sequential is None:
        return None
    from ray_xt.stages import expand

    return replay(cfg, expand(cfg), {r["stage"]["stage_key"]: r for r in records})


def cost_lines(cfg, costs: list) -> list[str]:
    """The plan's expected and worst-case cost of a sequential study (none for fixed seeds): the worst case runs
    every stage at every seed (``costs``: ``ray_xt.costs.estimate``'s rows); the expected share of seeds is simulated
    under no effect and under the fixed design's detectable one."""
    if cfg.sequential is None:
        return []
    from ray_xt.contrasts import family_sizes
    from ray_xt.group_sequential import expected_seed_share
    from ray_xt.stats import detectable_difference

    devices = {c.device for c in costs}
    device = devices.pop() if len(devices) == 1 else "device"
    worst_device_hours = sum(c.device_hours for c in costs)
    rule = rule_of(cfg)
    m = max(1, max(family_sizes(primary_rows(cfg)).values()))
    studies = max(10, 400 // m)  # ~5 s of `ray-xt plan`
    effect = detectable_difference(1.0, rule.max_seeds, rule.alpha / m, cfg.power.wanted_power)
    null_share = expected_seed_share(rule, m, 0.0, studies)
    effect_share = expected_seed_share(rule, m, effect, studies)
    return [f"\nsequential seeds ({rule.min_seeds} to {rule.max_seeds}; {m} primary contrasts in the largest family):",
            f"  worst case: {worst_device_hours:.2f} {device}-h (every contrast to {rule.max_seeds} seeds: the table above)",
            f"  expected with no true effect anywhere: {null_share * worst_device_hours:.2f} {device}-h "
            f"({null_share:.0%} of the seeds)",
            f"  expected with every contrast at the fixed {rule.max_seeds}-seed design's detectable difference "
            f"({effect:.2f} seed sd, power {cfg.power.wanted_power}): {effect_share * worst_device_hours:.2f} "
            f"{device}-h ({effect_share:.0%})",
            f"  (simulated: {studies} studies of {m} independent contrasts; a stage several contrasts share is counted "
            "once per contrast, so real studies land between these and the worst case)"]
