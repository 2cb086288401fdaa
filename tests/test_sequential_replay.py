"""The sequential study's looks replayed from records: which contrasts stop, which get another seed and exactly
which stages that seed runs, with scores whose effects are known."""

import numpy as np

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

    rows = sequential_rows(state, list(done.values()))
    assert set(rows.decision) == {d.state for d in state.decisions.values()}
    decided = rows[rows.target == "pawsx"].iloc[0]
    assert decided.sim_low > 0 and decided.ci_low <= decided["mean"] <= decided.ci_high
    assert (rows.sim_high - rows.sim_low >= rows.ci_high - rows.ci_low).all()
    text = render_sequential(state)
    assert "| pawsx |" in text and "decided" in text

    assert replay(cfg, stages, dict(done)).decisions == state.decisions  # replayed: the same
