"""Study expansion into stages: counts, dependency order, and stable, input-sensitive keys."""

import pytest

from ray_xt.config import parse_study
from ray_xt.stages import expand

BASE = {
    "name": "s",
    "scales": ["micro-s", "micro-m"],
    "intermediate": {"tasks": ["mnli", "qqp"], "conditions": ["en", "translate-train"]},
    "target": {"tasks": ["pawsx", "xnli"]},
    "seeds": [0, 1, 2],
}


def test_counts():
    stages = expand(parse_study(BASE))
    # per scale and seed: 2 tasks x 2 conditions intermediates, 2 targets x (1 baseline + 4 upstreams)
    per = 2 * 2 + 2 * (1 + 4)
    assert len(stages) == 2 * 3 * per
    assert sum(s.kind == "intermediate" for s in stages) == 2 * 3 * 4


def test_upstreams_come_first_and_are_shared():
    stages = expand(parse_study(BASE))
    seen = set()
    for s in stages:
        if s.upstream is not None:
            assert s.upstream.key in seen
        seen.add(s.key)
    assert len(seen) == len(stages)  # every key distinct
    inter = [s for s in stages if s.kind == "intermediate"][0]
    users = [s for s in stages if s.upstream == inter]
    assert {u.task for u in users} == {"pawsx", "xnli"}  # one checkpoint feeds every target task


def test_keys_are_stable_and_track_inputs():
    a = [s.key for s in expand(parse_study(BASE))]
    b = [s.key for s in expand(parse_study(BASE))]
    assert a == b
    changed = [s.key for s in expand(parse_study({**BASE, "trial": {"epochs": 5}}))]
    assert not set(a) & set(changed)


def test_new_trial_settings_at_their_defaults_keep_existing_keys_and_a_new_world_changes_them():
    """Keys of a hub study computed before `trial.workers`, `trial.freeze_embeddings` and
    `trial.group_by_length` existed (pinned from revision b2d4e2a): its finished stages are still found. A
    micro study's keys follow the world generator's version, so a changed world never reuses stages trained on
    the old one."""
    from ray_xt.micro import build

    hub = {**BASE, "scales": ["xlmr-base"], "data": {"source": "hub"}}
    stages = expand(parse_study(hub))
    # the last stage (xnli after qqp, one family) was 308795bf6ca67ff1 until stages.FRESH_HEAD_VERSION 2
    assert (stages[0].key, stages[-1].key) == ("4589469aafb80be5", "b94a93ae755bddfc")
    assert [s.key for s in expand(parse_study({**hub, "trial": {"workers": 2}}))][0] != stages[0].key
    assert [s.key for s in expand(parse_study({**hub, "trial": {"freeze_embeddings": True}}))][0] != stages[0].key
    assert [s.key for s in expand(parse_study({**hub, "trial": {"group_by_length": True}}))][0] != stages[0].key
    # accumulation and placement change how the effective batch is computed, not what it is: same keys
    for same in ({"trial": {"grad_accum": 1}}, {"trial": {"grad_accum": None}},
                 {"scale_overrides": {"xlmr-base": {"gpus": 1, "micro_batch_tokens": 1024}}}):
        assert expand(parse_study({**hub, **same}))[0].key == stages[0].key, same
    micro = expand(parse_study(BASE))[0].key
    original = build.CORPUS_VERSION
    try:
        build.CORPUS_VERSION = original + 1
        assert expand(parse_study(BASE))[0].key != micro
    finally:
        build.CORPUS_VERSION = original


def test_a_changed_micro_pretraining_recipe_changes_the_keys(monkeypatch):
    """The same world with differently pretrained scales gives other models: no stage may be reused."""
    from dataclasses import replace

    from ray_xt import scales

    before = [s.key for s in expand(parse_study(BASE))]
    s = scales.SCALES["micro-s"]
    monkeypatch.setitem(scales.SCALES, "micro-s", replace(s, micro=replace(s.micro, steps=s.micro.steps + 1)))
    after = [s.key for s in expand(parse_study(BASE))]
    assert not set(before) & set(after)
    hub = {**BASE, "scales": ["xlmr-base"], "data": {"source": "hub"}}
    assert expand(parse_study(hub))[0].key == "4589469aafb80be5"  # hub studies do not depend on micro recipes


def test_adding_a_seed_keeps_existing_keys():
    a = {s.key for s in expand(parse_study(BASE))}
    b = {s.key for s in expand(parse_study({**BASE, "seeds": [0, 1, 2, 3]}))}
    assert a < b and len(b - a) == len(a) // 3


def test_shipped_experiments_expand_to_the_expected_graphs():
    from pathlib import Path

    from ray_xt.config import load_study

    root = Path(__file__).resolve().parents[1] / "experiments"
    kinds = lambda stages: {k: sum(s.kind == k for s in stages) for k in ("intermediate", "target", "retrieval")}  # noqa: E731
    # the paper: 9 intermediate tasks, each plain and with multilingual MLM mixed in, and multi-task training on
    # all nine; 7 trained targets and 2 retrieval tasks, each from the pretrained model and from every
    # intermediate checkpoint (20 sources); 3 seeds
    phang = expand(load_study(root / "phang2020.yaml"))
    assert kinds(phang) == {"intermediate": 3 * 19, "target": 3 * 7 * 20, "retrieval": 3 * 2 * 20}
    assert len(phang) == 597
    # scaling: 2 scales x 3 seeds x (2 tasks with XTREME translations, MNLI and SQuAD, x (English + one model per
    # each of 3 languages)) intermediates, 4 targets from 9 sources
    scaling = expand(load_study(root / "scaling_study.yaml"))
    assert kinds(scaling) == {"intermediate": 2 * 3 * 2 * 4, "target": 2 * 3 * 4 * 9, "retrieval": 0}
    langs = {str(s.condition) for s in scaling if s.kind == "intermediate"}
    assert langs == {"en", "translate-train:de", "translate-train:es", "translate-train:zh"}
    demo = load_study(root / "demo.yaml")
    stages = expand(demo)
    assert len(demo.scales) >= 2 and len(demo.seeds) >= 3 and len(demo.intermediate.tasks) >= 3
    assert {"en", "translate-train"} <= set(demo.intermediate.conditions)
    assert len(demo.target.tasks) >= 3 and any(s.kind == "retrieval" for s in stages)


def test_task_overrides_change_only_their_task():
    cfg = parse_study({**BASE, "task_overrides": {"pawsx": {"epochs": 7, "max_seq_length": 96}}})
    assert cfg.trial_for("pawsx").epochs == 7 and cfg.trial_for("pawsx").max_seq_length == 96
    assert cfg.trial_for("xnli") == cfg.trial
    import pytest

    from ray_xt.config import ConfigError

    with pytest.raises(ConfigError, match=r"task_overrides: \['udpos'\] are not tasks of this study"):
        parse_study({**BASE, "task_overrides": {"udpos": {"epochs": 2}}})
    with pytest.raises(ConfigError, match=r"task_overrides.pawsx: unknown key\(s\) \['epoch'\]"):
        parse_study({**BASE, "task_overrides": {"pawsx": {"epoch": 2}}})


def test_multi_task_is_one_more_upstream_keyed_by_its_tasks():
    cfg = parse_study({**BASE, "intermediate": {**BASE["intermediate"], "multi_task": True}})
    stages = expand(cfg)
    multi = [s for s in stages if s.task == "multi-task"]
    assert len(multi) == 2 * 3  # per scale and seed
    assert len(stages) == len(expand(parse_study(BASE))) + 2 * 3 * (1 + 2)  # itself and a target per target task
    users = [s for s in stages if s.upstream == multi[0]]
    assert {u.task for u in users} == {"pawsx", "xnli"} and users[0].intermediate_task == "multi-task"
    fewer = parse_study({**BASE, "intermediate": {**BASE["intermediate"], "tasks": ["mnli"], "multi_task": True}})
    assert multi[0].key not in {s.key for s in expand(fewer)}


def test_an_xl_trial_is_a_four_gpu_worker_group_and_costs_four_gpus(tmp_path):
    """xlmr-xl asks for several GPUs per trial: 4 workers x 1 GPU, ZeRO-3; `ray-xt plan` counts every GPU."""
    from pathlib import Path

    from ray_xt.config import load_study
    from ray_xt.costs import ThroughputTable, estimate

    cfg = load_study(Path(__file__).resolve().parents[1] / "experiments" / "scaling_beyond.yaml")
    costs = {c.scale: c for c in estimate(cfg, expand(cfg), ThroughputTable(tmp_path / "throughput.json"))}
    large, xl = costs["xlmr-large"], costs["xlmr-xl"]
    assert large.device == xl.device == "GPU"
    assert large.device_hours == pytest.approx(large.trial_hours * 1)
    assert xl.device_hours == pytest.approx(xl.trial_hours * 4)
    from ray_xt.scales import SCALES

    assert SCALES["xlmr-xl"].workers_per_trial == 4 and SCALES["xlmr-xl"].zero_stage == 3


def test_measured_throughput_is_filed_under_the_scales_shape(tmp_path, monkeypatch):
    """A redefined micro scale starts its cost estimate afresh; hub scales keep their name as the key."""
    from dataclasses import replace

    from ray_xt import scales
    from ray_xt.costs import ThroughputTable

    table = ThroughputTable(tmp_path / "throughput.json")
    assert table.examples_per_second("micro-m") == (scales.SCALES["micro-m"].examples_per_second, "table default")
    table.add("micro-m", [100.0, 300.0])
    table.add("xlmr-base", [50.0])
    reread = ThroughputTable(tmp_path / "throughput.json")
    assert reread.examples_per_second("micro-m") == (200.0, "measured over 2 trials")
    assert "xlmr-base" in reread.data and reread.examples_per_second("xlmr-base")[0] == 50.0

    old = scales.SCALES["micro-m"]
    wider = replace(old, micro=replace(old.micro, hidden_size=old.micro.hidden_size * 2))
    monkeypatch.setitem(scales.SCALES, "micro-m", wider)
    assert reread.examples_per_second("micro-m") == (wider.examples_per_second, "table default")
    reread.add("micro-m", [40.0])
    assert reread.examples_per_second("micro-m") == (40.0, "measured over 1 trials")
    monkeypatch.setitem(scales.SCALES, "micro-m", old)
    assert reread.examples_per_second("micro-m") == (200.0, "measured over 2 trials")


def test_the_fresh_head_fix_reruns_exactly_the_targets_after_an_intermediate_task_of_their_own_family():
    """docs/migrations.md, FRESH_HEAD_VERSION 2: a target after a same-family intermediate task (whose head the
    target's could match in shape) gets a new key; after another family, the pretrained model or a multi-task
    encoder, its key is what it always was (the plain inputs digest)."""
    from ray_xt.stages import Stage, inputs_digest

    cfg = parse_study({**BASE, "scales": ["micro-s"], "seeds": [0],
                       "intermediate": {"tasks": ["qqp", "hellaswag"], "conditions": ["en"], "multi_task": True},
                       "target": {"tasks": ["pawsx", "udpos"]}})
    plain = inputs_digest(cfg)
    for stage in expand(cfg):
        if stage.kind != "target":
            continue
        rerun = stage.intermediate_task == "qqp" and stage.task == "pawsx"
        unchanged = Stage(stage.kind, stage.scale, stage.task, stage.seed, stage.condition, stage.intermediate_task,
                          stage.upstream, plain)
        assert (stage.key != unchanged.key) == rerun, stage.label


def test_how_mlm_is_mixed_in_keys_only_the_mlm_stages_and_what_follows_them():
    """intermediate.mlm_ratio and mlm_lines are what an mlm stage trains on: changing them re-runs the mlm stages
    and their targets, never the `en` or baseline ones (their keys ignore the mlm settings)."""
    study = {**BASE, "intermediate": {"tasks": ["mnli"], "conditions": ["en", "mlm"]}}
    keys = {s.label: s.key for s in expand(parse_study(study))}
    for change in ({"mlm_ratio": 1.0}, {"mlm_lines": 500}):
        changed = {s.label: s.key for s in expand(parse_study({**study, "intermediate": {**study["intermediate"],
                                                                                          **change}}))}
        moved = {label for label in keys if keys[label] != changed[label]}
        assert moved and all("[mlm]" in label for label in moved), (change, moved)
        assert moved == {label for label in keys if "[mlm]" in label}
    plain = {s.label: s.key for s in expand(parse_study({**study, "intermediate": {"tasks": ["mnli"],
                                                                                    "conditions": ["en"]}}))}
    assert all(keys[label] == key for label, key in plain.items())


def test_mlm_steps_come_on_top_of_the_task_steps_at_a_fixed_ratio():
    from ray_xt.loop import Schedule

    plain = Schedule.of(1000, 32, 2, 2)
    mixed = Schedule.of(1000, 32, 2, 2, companion_ratio=0.5)
    assert (mixed.total_steps, mixed.eval_every, mixed.reports) == (plain.total_steps, plain.eval_every, plain.reports)
    assert mixed.companion_steps(mixed.total_steps) == 32 and mixed.optimizer_steps == 64 + 32
    assert [mixed.companion_steps(s) for s in range(6)] == [0, 0, 1, 1, 2, 2]
    assert plain.optimizer_steps == plain.total_steps
