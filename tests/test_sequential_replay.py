"""The sequential study's looks replayed from records: which contrasts stop, which get another seed and exactly
which stages that seed runs, with scores whose effects are known."""

import numpy as np
import pytest

from ray_xt.config import parse_study
from ray_xt.records import stage_record
from ray_xt.sequential import render_sequential, replay, sequential_rows
from ray_xt.stages import expand

LANGS = ["qca", "qso", "qka"]
EFFECT = {"pawsx": 12.0, "xnli": 1.5}  # English − translate-train, points: one decided at once, one unclear


def _cfg(tmp_path):
    return parse_study({"name": "seq", "scales": ["micro-s"], "seeds": {"min": 3, "max": 6},
                        "intermediate": {"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
                        "target": {"tasks": ["pawsx", "xnli"], "languages": ["en", *LANGS]},
                        "storage": str(tmp_path / "results")})


def _record(stage, rng):
    base = 70.0 + rng.normal(0, 1.0)
    gain = EFFECT[stage.task] if str(stage.condition) == "en" else 0.0
    scores = {"en": 0.85, **{lang: (base + gain + rng.normal(0, 0.5)) / 100 for lang in LANGS}}
    return stage_record(stage.tags, stage.label, {"best_score": 0.8, "best_learning_rate": 1e-4,
                                                  "best_model_dir": "x"}, zero_shot=scores)


def test_the_looks_stop_a_decided_and_a_futile_contrast_and_run_only_what_an_open_one_needs(tmp_path):
    cfg = _cfg(tmp_path)
    stages = expand(cfg)
    rng = np.random.default_rng(3)
    done = {}
    state = replay(cfg, stages, done)
    assert state.looks_made == 0 and {s.seed for s in state.wanted} == {0, 1, 2}
    rounds = 0
    while True:
        state = replay(cfg, stages, done)
        todo = [s for s in stages if s in state.wanted and s.key not in done]
        if not todo:
            break
        rounds += 1
        for stage in todo:
            done[stage.key] = _record(stage, rng) if stage.scored else stage_record(
                stage.tags, stage.label, {"best_score": 0.8, "best_learning_rate": 1e-4, "best_model_dir": "x"})
    decisions = {name.split(" | ")[1]: d for name, d in state.decisions.items()}
    assert decisions["pawsx"].state == "decided" and decisions["pawsx"].holm_p <= 0.05
    assert decisions["xnli"].state in ("decided", "futile", "at max")
    pawsx_seeds = {s.seed for s in stages if s.key in done and s.task == "pawsx"}
    xnli_seeds = {s.seed for s in stages if s.key in done and s.task == "xnli"}
    looks_x = len(state.history[next(n for n in state.history if "| xnli |" in n)])
    looks_p = len(state.history[next(n for n in state.history if "| pawsx |" in n)])
    assert pawsx_seeds == set(range(state.rule.looks[looks_p - 1]))  # no seed beyond where it was decided
    assert xnli_seeds == set(range(state.rule.looks[looks_x - 1]))
    assert rounds == max(looks_x, looks_p)
    # a seed added for one target runs its intermediates and its own two conditions, not the other target
    assert looks_x > looks_p
    extra = [s for s in stages if s.key in done and s.seed == state.rule.looks[looks_p - 1]]  # the first seed past pawsx's stop
    assert {s.task for s in extra if s.scored} == {"xnli"}
    assert {s.label.split(" seed")[0] for s in extra if not s.scored} == {"intermediate mnli [en] micro-s",
                                                                          "intermediate mnli [translate-train] micro-s"}
    assert not any(s.scored and s.upstream is None for s in extra)  # en − translate-train needs no baseline

    rows = sequential_rows(state)
    assert set(rows.decision) == {d.state for d in state.decisions.values()}
    decided = rows[rows.target == "pawsx"].iloc[0]
    assert decided.sim_low > 0 and decided.ci_low <= decided["mean"] <= decided.ci_high
    assert (rows.sim_high - rows.sim_low >= rows.ci_high - rows.ci_low).all()
    text = render_sequential(state)
    assert "| pawsx |" in text and "decided" in text

    assert replay(cfg, stages, dict(done)).decisions == state.decisions  # replayed: the same


def test_seeds_as_a_rule_are_checked_and_narrowing_to_seeds_drops_the_rule(tmp_path):
    import pytest

    from ray_xt.config import ConfigError, only_seeds

    def study(**changes):
        return {"name": "seq", "scales": ["micro-s"], "target": {"tasks": ["pawsx"]},
                "intermediate": {"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
                "storage": str(tmp_path / "r"), **changes}

    with pytest.raises(ConfigError, match=r"seeds: .*max \(4\) must be greater than min \(4\)"):
        parse_study(study(seeds={"min": 4, "max": 4}))
    with pytest.raises(ConfigError, match=r"seeds\.min: Input should be greater than or equal to 2"):
        parse_study(study(seeds={"min": 1, "max": 4}))
    with pytest.raises(ConfigError, match="no intermediate condition"):
        parse_study(study(seeds={"min": 2, "max": 4}, intermediate={"tasks": [], "conditions": []}))
    cfg = parse_study(study(seeds={"min": 2, "max": 4}))
    assert cfg.seeds == [0, 1, 2, 3] and cfg.sequential.min == 2
    assert only_seeds(cfg, "0", "s.yaml").sequential is None
    # the same seeds, fixed or as a rule: the same stage keys (a study can switch and keep what it ran)
    assert [s.key for s in expand(cfg)] == [s.key for s in expand(parse_study(study(seeds=[0, 1, 2, 3])))]


def test_warm_stage_keys_follow_their_informants_and_nothing_else(tmp_path):
    def study(**search):
        return parse_study({"name": "w", "scales": ["micro-s", "micro-m"], "seeds": [0, 1],
                            "intermediate": {"tasks": ["mnli"], "conditions": ["en"]},
                            "target": {"tasks": ["pawsx", "tatoeba"]}, "search": search,
                            "storage": str(tmp_path / "r")})

    cold = {s.label: s for s in expand(study())}
    warm = {s.label: s for s in expand(study(warm_start={"enabled": True, "num_samples": 1}))}
    assert [s.key for s in expand(study(warm_start={"enabled": False}))] == [s.key for s in cold.values()]
    def warmed(stage) -> bool:
        return bool(stage.informants) or (stage.upstream is not None and warmed(stage.upstream))

    for label, stage in warm.items():
        # a stage nothing informs (nor its upstream) keeps its cold key; an informed one is keyed by its
        # informants, never by which stage finished first (the same expansion gives the same keys)
        assert (stage.key == cold[label].key) == (not warmed(stage))
        assert all(i.label in warm and warm[i.label].key == i.key for i in stage.informants)
        assert not (stage.kind == "retrieval" and stage.informants)  # retrieval has no search
    informed = warm["target pawsx <- mnli[en] micro-m seed1"].informants
    assert [i.label for i in informed] == ["target pawsx <- pretrained micro-m seed1",
                                           "target pawsx <- mnli[en] micro-m seed0"]
    scaled = {s.label: s for s in expand(study(warm_start={"enabled": True, "from_smaller_scale": True}))}
    assert "intermediate mnli [en] micro-s seed0" in [
        i.label for i in scaled["intermediate mnli [en] micro-m seed0"].informants]
    assert {s.key for s in expand(study(warm_start={"enabled": True, "num_samples": 1}))} == {
        s.key for s in warm.values()}


def test_what_informants_tell_a_search():
    from ray_xt.records import stage_record
    from ray_xt.warm_start import warm_start

    def rec(best, trials):
        return stage_record({}, "x", {"best_learning_rate": best, "best_score": 0.7, "best_model_dir": "m",
                                      "trials": [{"learning_rate": lr, "score": sc} for lr, sc in trials]})

    same = rec(3e-4, [(3e-4, 0.7), (1e-5, 0.4), (5e-4, None)])
    smaller = rec(4e-4, [(4e-4, 0.6)])
    told = warm_start("micro-m", [("a", "micro-m", same), ("b", "micro-s", smaller)], 1e-5, 1e-3)
    assert told.first_points[0] == 3e-4
    assert told.first_points[1] == pytest.approx(4e-4 * 64 / 96)  # the width ratio, micro-s to micro-m
    assert told.observations == ((3e-4, 0.7), (1e-5, 0.4), (pytest.approx(4e-4 * 64 / 96), 0.6))
    assert told.as_record()["informants"] == ["a", "b"]


def test_the_plan_prices_a_sequential_study_between_its_first_round_and_its_worst_case(tmp_path):
    from ray_xt.costs import ThroughputTable, estimate
    from ray_xt.sequential import cost_lines

    cfg = _cfg(tmp_path)
    costs = estimate(cfg, expand(cfg), ThroughputTable(tmp_path / "throughput.json"))
    worst = sum(c.device_hours for c in costs)
    lines = cost_lines(cfg, costs)
    assert f"worst case: {worst:.2f} CPU core-h" in lines[1]
    shares = [float(line.split("(")[-1].split("%")[0]) for line in lines[2:4]]
    assert 100 * 3 / 6 <= shares[0] < shares[1] <= 100  # the first round always runs; an effect keeps more open
    fixed = parse_study({**cfg.model_dump(mode="json", exclude={"sequential"}), "seeds": [0, 1, 2]})
    assert cost_lines(fixed, costs) == []
