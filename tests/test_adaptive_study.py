"""A study that learns as it goes, end to end on the micro world: sweeps seeded by the stages that inform them
(recorded, tagged, keyed by their informants), and seeds added only while a primary contrast is undecided (the
looks replayed from records, the stages each round runs, a resume that asks for nothing more, the report)."""

import json

import mlflow
import pytest

from conftest import tiny_study
from ray_xt.config import parse_study
from ray_xt.stages import expand
from ray_xt.study import StudyDriver


def _study(tmp_path, micro_cache):
    return tiny_study(tmp_path, micro_cache, name="adaptive",
                      intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
                      seeds={"min": 2, "max": 3},
                      search={"warm_start": {"enabled": True, "num_samples": 1}},
                      trial={"epochs": 1})


def test_warm_sweeps_and_sequential_seeds_through_a_study(tmp_path, micro_cache, ray_local):
    cfg = parse_study(_study(tmp_path, micro_cache))
    stages = expand(cfg)
    assert {s.seed for s in stages} == {0, 1, 2}  # the most the rule allows
    lines: list[str] = []
    records = StudyDriver(cfg, log=lines.append).run(progress=False)
    by_key = {r["stage"]["stage_key"]: r for r in records}

    # seeds 0 and 1 ran everywhere; seed 2 only where a contrast stayed open after the first look
    assert all(s.key in by_key for s in stages if s.seed < 2)
    look = next(line for line in reversed(lines) if "sequential seeds:" in line)
    assert "1 look(s) made" in look or "2 look(s) made" in look
    from ray_xt.sequential import replay

    state = replay(cfg, stages, by_key)
    assert state.looks_made >= 1 and state.decisions
    assert {s.key for s in state.wanted} <= set(by_key)  # nothing it asked for is missing
    opened = [n for n, h in state.history.items() if len(h) > 1]
    assert bool(opened) == any(s.seed == 2 for s in stages if s.key in by_key)

    # warm stages: informed by finished stages, recorded, tagged, one trial each
    warm = [s for s in stages if s.informants and s.key in by_key]
    assert warm
    for stage in warm:
        record = by_key[stage.key]
        assert record["warm_start"]["informants"] == [i.label for i in stage.informants]
        assert record["warm_start"]["observations"] >= 1
        assert len(record["sweep"]["trials"]) == 1
        first = record["warm_start"]["first_points"][0]
        assert record["sweep"]["trials"][0]["learning_rate"] == pytest.approx(first)  # evaluated first
    mlflow.set_tracking_uri(cfg.tracking.uri)
    run = mlflow.get_run(by_key[warm[0].key]["parent_run_id"])
    assert run.data.tags["warm_start.informants"] == "; ".join(i.label for i in warm[0].informants)

    # a re-run: the same keys, the same looks, nothing to run
    again: list[str] = []
    StudyDriver(parse_study(_study(tmp_path, micro_cache)), log=again.append).run(progress=False)
    assert any("0 stage(s) to run" in line for line in again)
    assert not any("started" in line for line in again)

    # the report states the rule and carries repeated p-values
    from ray_xt.report import write_report

    markdown, files = write_report(records, tmp_path / "report", state)
    assert "## Sequential seeds" in markdown and "O'Brien–Fleming" in markdown
    assert "repeated p" in markdown
    primary = (tmp_path / "report" / "primary_contrasts.csv").read_text()
    assert "decision" in primary.splitlines()[0]
    json.dumps(state.rule.__dict__)
