"""End to end on real engines: local Ray, Optuna, ASHA, DeepSpeed ZeRO-2 on CPU, MLflow on SQLite."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import tiny_study
from ray_xt.config import parse_study
from ray_xt.stages import expand
from ray_xt.study import StageRunner, StudyDriver
from ray_xt.tracking import KEY_TAG, PARENT_TAG

pytestmark = pytest.mark.integration


def _runs(uri: str, experiment: str):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def test_two_trial_sweep_records_everything_once(tmp_path, micro_cache, ray_local):
    cfg = parse_study(tiny_study(tmp_path, micro_cache))
    uri, experiment = cfg.tracking.uri, "ray_xt/tiny"
    lines: list[str] = []
    records = StudyDriver(cfg, log=lines.append).run(progress=False)

    assert len(records) == 1
    record = records[0]
    assert set(record["zero_shot"]) == {"en", "qca", "qso"}
    assert all(0.0 <= v <= 1.0 for v in record["zero_shot"].values())

    runs = _runs(uri, experiment)
    summary = [r for r in runs if r.data.tags.get("stage") == "summary"]
    parents = [r for r in runs if PARENT_TAG not in r.data.tags and r not in summary]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    # the study's progress, one step per finished stage, in its summary run (from the start, before any report)
    assert len(summary) == 1 and summary[0].data.metrics["progress.stages_done"] == 1.0
    assert summary[0].data.metrics["progress.stages_total"] == 1.0 and summary[0].data.metrics["progress.eta_hours"] == 0
    assert [h.step for h in MlflowClient(uri).get_metric_history(summary[0].info.run_id, "progress.stages_done")] == [0, 1]
    assert any(line.startswith("[ray-xt] progress: 1/1 stages done (1 this run)") for line in lines), lines
    assert any("/runs?workflowType=machine_learning&viewStateShareKey=ray-xt" in line for line in lines), lines
    assert 0.0 <= parents[0].data.metrics["zero_shot.avg"] <= 1.0
    assert all(c.data.tags[PARENT_TAG] == parents[0].info.run_id for c in children)
    assert len({c.data.tags[KEY_TAG] for c in children}) == 2
    for child in children:
        lr = float(child.data.params["learning_rate"])
        assert 1e-4 <= lr <= 1e-3
        assert child.data.params["seed"] == "0"
        assert {"scale", "condition", "task", "stage"} <= set(child.data.tags)
        assert child.data.tags["scale"] == "micro-s" and child.data.tags["stage"] == "target"
        assert "score" in child.data.metrics and "train_loss" in child.data.metrics
        assert child.info.status == "FINISHED"
        history = MlflowClient(uri).get_metric_history(child.info.run_id, "score")
        assert len(history) >= 1 and all(h.step > 0 for h in history)
    assert "zero_shot.qso" in parents[0].data.metrics

    # the best checkpoint carries its resolved config and git revision
    model_dir = Path(record["sweep"]["best_model_dir"])
    ckpt = model_dir.parent
    resolved = json.loads((ckpt / "trial_config.json").read_text())
    assert resolved["searched"]["learning_rate"] == pytest.approx(record["sweep"]["best_learning_rate"])
    assert resolved["fixed"]["zero_stage"] == 2
    assert (ckpt / "git_revision.txt").read_text().strip()
    # a finished sweep keeps its best checkpoint as the model alone, and no other checkpoint of any trial
    assert not (ckpt / "ds").exists() and (model_dir / "config.json").is_file()
    assert list((tmp_path / "results" / "tiny" / "tune").glob("*/*/checkpoint_*")) == [ckpt]
    # every report says where the trial's time went (bench/orchestration_overhead.py sums these)
    reported = json.loads((ckpt / "state.json").read_text())["metrics"]
    assert reported["loop.train_s"] > 0 and reported["loop.evaluate_s"] > 0
    assert {"loop.checkpoint_s", "loop.report_s", "setup.first_step"} <= set(reported)
    assert record["sweep_started_at"] < reported["trial_entry_time"]

    # a second run executes nothing and creates no runs
    lines.clear()
    StudyDriver(cfg, log=lines.append).run(progress=False)
    assert any("1 done before (skipped), 0 to run" in line for line in lines)
    assert len(_runs(uri, experiment)) == len(runs)

    # resume path: the driver died after the sweep but before recording the stage ->
    # Tuner.restore finds every trial finished; still no new runs
    stage = expand(cfg)[0]
    (tmp_path / "results" / "tiny" / "stages" / f"{stage.key}.json").unlink()
    again = StudyDriver(cfg, log=lines.append).run(progress=False)
    assert again[0]["sweep"]["best_model_dir"] == record["sweep"]["best_model_dir"]
    assert len(_runs(uri, experiment)) == len(runs)


def test_every_family_through_a_study_with_xtreme_submissions(tmp_path, micro_cache, ray_local):
    """Multiple choice as intermediate task; tagging, span QA and retrieval as targets: trained with DeepSpeed
    through Tune, evaluated zero-shot, predictions written in XTREME's layout and scored by `ray-xt score`'s code."""
    from ray_xt.score import score_task

    study = tiny_study(
        tmp_path, micro_cache,
        intermediate={"tasks": ["commonsenseqa"], "conditions": ["en"]},
        target={"tasks": ["udpos", "xquad", "tatoeba"]},
        # length-grouped batches of every family's features (multiple choice by its longest choice)
        trial={"epochs": 1, "max_seq_length": 64, "doc_stride": 16, "group_by_length": True},
        search={"num_samples": 1, "max_concurrent": 1},
    )
    cfg = parse_study(study)
    runner = StudyDriver(cfg, log=lambda m: None)
    records = runner.run(progress=False)
    assert all(r["trial_spec"]["group_by_length"] for r in records if r["stage"]["stage"] != "retrieval")
    # every (task, split, languages, tokenizer, max_len, stride) was tokenised exactly once, in the driver;
    # trials and stage drivers only loaded the Arrow files
    cached = [p for p in runner.parts.paths.features.iterdir() if not p.name.endswith(".partial")]
    assert runner.parts.features.misses == len(cached) and runner.parts.features.hits > 0
    kinds = sorted((r["stage"]["stage"], r["stage"]["task"]) for r in records)
    assert kinds == sorted([("intermediate", "commonsenseqa"), ("target", "udpos"), ("target", "udpos"),
                            ("target", "xquad"), ("target", "xquad"), ("retrieval", "tatoeba"),
                            ("retrieval", "tatoeba")])
    labels_root = runner.resolved.data_root / "labels"
    for record in records:
        if record["stage"]["stage"] != "retrieval":  # concurrent sweeps each trained what their own stage asked
            ckpt = Path(record["sweep"]["best_model_dir"]).parent
            trained = json.loads((ckpt / "trial_config.json").read_text())["fixed"]
            assert trained["model_path"] == record["trial_spec"]["model_path"]
            assert trained["stage_key"] == record["stage"]["stage_key"]
        task = record["stage"]["task"]
        if record["stage"]["stage"] == "intermediate":
            assert "zero_shot" not in record and 0 <= record["sweep"]["best_score"] <= 1
            continue
        langs = ["qca", "qso"] if task == "tatoeba" else ["en", "qca", "qso"]
        assert sorted(record["zero_shot"]) == langs
        assert all(0.0 <= v <= 1.0 for v in record["zero_shot"].values())
        submission = Path(record["predictions_dir"]).parent
        suffix = "json" if task == "xquad" else "tsv"
        assert sorted(p.name for p in (submission / task).iterdir()) == [f"test-{lang}.{suffix}" for lang in langs]
        # the official scorer's numbers on the written files equal the evaluator's own (same split for these)
        if task in ("xquad", "tatoeba"):
            official = score_task(task, submission, labels_root, tuple(langs))
            metric = "f1" if task == "xquad" else "accuracy"
            for lang in langs:
                assert official[metric][lang] == pytest.approx(record["zero_shot_metrics"][lang][metric])
    # retrieval from the intermediate checkpoint uses that checkpoint's encoder
    retrieval = [r for r in records if r["stage"]["stage"] == "retrieval"]
    assert {r["stage"]["intermediate_task"] for r in retrieval} == {"none", "commonsenseqa"}
    assert len({r["model_dir"] for r in retrieval}) == 2
    # the submission files are MLflow artifacts of their stage's run
    client = MlflowClient(cfg.tracking.uri)
    stage_run = next(r for r in records if r["stage"]["task"] == "xquad")["parent_run_id"]
    assert [a.path for a in client.list_artifacts(stage_run)] == ["predictions"]


def test_a_diverging_trial_fails_with_its_reason_and_the_sweep_continues(tmp_path, micro_cache, ray_local,
                                                                          monkeypatch):
    """A learning rate of 1e10 makes the loss non-finite: that trial is marked failed once (its retries stop
    at the divergence marker), MLflow records the reason, the other trial finishes and wins the sweep."""
    from dataclasses import replace

    study = tiny_study(tmp_path, micro_cache, max_failures=2, search={"num_samples": 2, "max_concurrent": 2},
                       trial={"epochs": 1})
    cfg = parse_study(study)
    driver = StudyDriver(cfg, log=lambda m: None)
    original = StageRunner._sweep_settings
    # the config validator keeps initial_learning_rate inside the range; the sweep itself is given 1e10 here
    monkeypatch.setattr(StageRunner, "_sweep_settings",
                        lambda self, stage, n, warm=None: replace(original(self, stage, n, warm),
                                                                  initial_learning_rate=1e10))
    from ray_xt.study import resolve_inputs

    driver.resolved = resolve_inputs(cfg, use_ray=True, progress=False)
    runner = driver.stage_runner()
    stage = expand(cfg)[0]
    runner.prepare(stage)
    record = runner.run_stage(stage)  # in this process, so the patched settings apply
    trials = record["sweep"]["trials"]
    assert sorted(t["status"] for t in trials) == ["ERROR", "TERMINATED"]
    assert record["sweep"]["best_learning_rate"] < 1e-2
    runs = _runs(cfg.tracking.uri, "ray_xt/tiny")
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 1 and "training loss became" in failed[0].data.tags["error"]
    markers = list((tmp_path / "results" / "tiny" / "tune").rglob("diverged.json"))
    assert len(markers) == 1


def test_freeze_embeddings_keeps_the_embedding_layer_and_trains_the_rest(tmp_path, micro_cache, ray_local):
    import torch
    from transformers import AutoModel

    cfg = parse_study(tiny_study(tmp_path, micro_cache, trial={"freeze_embeddings": True, "epochs": 1},
                                 search={"num_samples": 1, "max_concurrent": 1}, scheduler={"enabled": False}))
    record = StudyDriver(cfg, log=lambda m: None).run(progress=False)[0]
    before = AutoModel.from_pretrained(record["trial_spec"]["model_path"])
    after = AutoModel.from_pretrained(record["sweep"]["best_model_dir"])
    assert torch.equal(before.embeddings.word_embeddings.weight, after.embeddings.word_embeddings.weight)
    assert not torch.equal(before.encoder.layer[0].attention.self.query.weight,
                           after.encoder.layer[0].attention.self.query.weight)
