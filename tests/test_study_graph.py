"""The study graph on real engines: concurrent stages, memoisation (a new seed runs only its stages) and
resume after the driver process is killed mid-study (no finished stage re-run, no duplicate MLflow runs)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import tiny_study
from ray_xt.config import parse_study
from ray_xt.stages import expand
from ray_xt.study import StudyDriver

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]


def _runs(uri: str):
    """The stage and trial runs (not the study's one summary run, which every run of the study updates)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ray_xt/tiny")
    runs = client.search_runs([exp.experiment_id], max_results=5000) if exp else []
    return [r for r in runs if r.data.tags.get("stage") != "summary"]


def _study(tmp_path, cache, seeds):
    return tiny_study(
        tmp_path, cache, intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train-each"]},
        target={"tasks": ["pawsx"]}, seeds=seeds, search={"num_samples": 1, "max_concurrent": 1},
        trial={"epochs": 1}, parallel_stages=2,
    )


def test_a_new_seed_runs_only_its_stages(tmp_path, micro_cache, ray_local):
    cfg = parse_study(_study(tmp_path, micro_cache, [0]))
    lines: list[str] = []
    first = StudyDriver(cfg, log=lines.append).run(progress=False)
    # intermediates: en + one per target language (qca, qso); targets from the pretrained model and each
    assert len(first) == 3 + 4
    each = [r for r in first if r["stage"]["condition"] == "translate-train:qso" and r["stage"]["stage"] == "target"]
    assert sorted(each[0]["zero_shot"]) == ["en", "qso"]  # a per-language model is evaluated on its language
    n_runs = len(_runs(cfg.tracking.uri))

    lines.clear()
    cfg2 = parse_study(_study(tmp_path, micro_cache, [0, 1]))
    second = StudyDriver(cfg2, log=lines.append).run(progress=False)
    assert len(second) == 14
    assert any("7 done before (skipped), 7 to run" in line for line in lines)
    started = [line for line in lines if ": started" in line]
    assert len(started) == 7 and all("seed1" in line for line in started)
    assert len(_runs(cfg.tracking.uri)) == 2 * n_runs  # the new seed's runs only


def test_resume_after_the_driver_is_killed(tmp_path):
    study = _study(tmp_path, tmp_path / "cache", [0])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    stage_dir = tmp_path / "results" / "tiny" / "stages"
    cmd = [str(Path(sys.executable).parent / "ray-xt"), "run", str(path)]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline and len(list(stage_dir.glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(1)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started: no clean shutdown
    proc.wait()
    finished_before = {p.stem for p in stage_dir.glob("*.json")}
    assert 2 <= len(finished_before) < 7

    # the killed driver's lease is live for two minutes: refused before Ray starts, unless taken over
    refused = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and f"pid {proc.pid}" in refused.stderr, refused.stderr[-2000:]
    again = subprocess.run([*cmd, "--takeover"], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{len(finished_before)} done before (skipped)" in again.stdout
    started_again = [line for line in again.stdout.splitlines() if ": started" in line]
    assert len(started_again) == 7 - len(finished_before)
    cfg = parse_study(study)
    keys = {s.key for s in expand(cfg)}
    assert {p.stem for p in stage_dir.glob("*.json")} == keys
    runs = _runs(study["tracking"]["uri"])
    stage_runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("stage") != "summary"]
    assert len(stage_runs) == 7  # one run per stage, the interrupted ones included: none duplicated
    trial_keys = [r.data.tags["ray_xt.key"] for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trial_keys) == len(set(trial_keys))


def test_multi_task_intermediate_training_feeds_the_targets(tmp_path, micro_cache, ray_local):
    study = tiny_study(
        tmp_path, micro_cache, intermediate={"tasks": ["mnli", "ccg"], "conditions": ["en"], "multi_task": True},
        target={"tasks": ["pawsx"]}, search={"num_samples": 1, "max_concurrent": 1}, trial={"epochs": 1},
    )
    records = StudyDriver(parse_study(study), log=lambda m: None).run(progress=False)
    multi = next(r for r in records if r["stage"]["task"] == "multi-task")
    trial = multi["sweep"]["trials"][0]
    assert 0 <= multi["sweep"]["best_score"] <= 1 and trial["status"] == "TERMINATED"
    target = next(r for r in records if r["stage"]["intermediate_task"] == "multi-task")
    assert sorted(target["zero_shot"]) == ["en", "qca", "qso"]
    client = MlflowClient(study["tracking"]["uri"])
    child = [r for r in _runs(study["tracking"]["uri"]) if r.data.tags.get("task") == "multi-task"
             and "mlflow.parentRunId" in r.data.tags]
    assert {"score.mnli", "score.ccg"} <= set(child[0].data.metrics)  # each task's dev score per evaluation
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(multi["sweep"]["best_model_dir"]).model_type == "xlm-roberta"
    del client


def test_the_mlm_condition_trains_the_task_with_target_language_mlm_mixed_in(tmp_path, micro_cache, ray_local):
    """The paper's third condition: English intermediate data, masked-LM on the target languages' own text beside
    it (the micro world's monolingual corpora), selected on the task's English dev score alone."""
    study = tiny_study(tmp_path, micro_cache, intermediate={"tasks": ["mnli"], "conditions": ["en", "mlm"],
                                                            "mlm_lines": 40},
                       target={"tasks": ["pawsx"]}, search={"num_samples": 1, "max_concurrent": 1}, trial={"epochs": 1})
    cfg = parse_study(study)
    runner = StudyDriver(cfg, log=lambda m: None)
    records = runner.run(progress=False)
    plain = next(r for r in records if r["stage"]["stage"] == "intermediate" and r["stage"]["condition"] == "en")
    mlm = next(r for r in records if r["stage"]["stage"] == "intermediate" and r["stage"]["condition"] == "mlm")
    assert [t["task"] for t in mlm["trial_spec"]["tasks"]] == ["mnli", "mlm"]
    assert [t["task"] for t in plain["trial_spec"]["tasks"]] == ["mnli"]
    root = runner.resolved.data_root  # 40 lines of each target language's own corpus at random, never English
    for lang in ("qca", "qso"):
        corpus = [x.strip() for x in (root.parent / "corpus" / f"{lang}.txt").read_text().splitlines() if x.strip()]
        sample = (root / "mlm" / f"train-{lang}.txt").read_text().splitlines()
        assert len(sample) == 40 and set(sample) <= set(corpus) and sample != corpus[:40]
        assert sample == random.Random(cfg.search.seed).sample(corpus, 40)  # the study's seed draws them
    assert not (root / "mlm" / "train-en.txt").exists()
    from ray_xt.data import load_features

    text, examples, _ = load_features(mlm["trial_spec"]["tasks"][1]["train_features"])
    labelled = sum(label != -100 for row in text["labels"] for label in row)
    assert len(examples) == 80 and 0.08 < labelled / sum(len(row) for row in text["labels"]) < 0.2  # 15% of words
    assert 0 <= mlm["sweep"]["best_score"] <= 1
    # no confound: the task's steps are its `en` twin's; MLM batches come on top at intermediate.mlm_ratio
    client = MlflowClient(study["tracking"]["uri"])

    def trial_metrics(record):
        trial_runs = [r for r in _runs(study["tracking"]["uri"])
                      if r.data.tags.get("mlflow.parentRunId") == record["parent_run_id"]]
        return [client.get_metric_history(r.info.run_id, "score") for r in trial_runs], trial_runs

    plain_steps, _ = trial_metrics(plain)  # the steps each report was made at
    mlm_steps, mlm_runs = trial_metrics(mlm)
    assert [[m.step for m in h] for h in plain_steps] == [[m.step for m in h] for h in mlm_steps] != [[]]
    last = max(m.step for h in mlm_steps for m in h)
    extra = mlm_runs[0].data.metrics["mlm_steps"]
    assert extra == int(last * cfg.intermediate.mlm_ratio) and extra > 0
    target = next(r for r in records if r["stage"]["condition"] == "mlm" and r["stage"]["stage"] == "target")
    assert sorted(target["zero_shot"]) == ["en", "qca", "qso"]
    assert [t["task"] for t in target["trial_spec"]["tasks"]] == ["pawsx"]  # MLM only in the intermediate stage
    run = next(r for r in _runs(study["tracking"]["uri"]) if r.data.tags.get("condition") == "mlm"
               and r.data.tags.get("stage") == "intermediate" and "mlflow.parentRunId" not in r.data.tags)
    names = {d.dataset.name for d in MlflowClient(study["tracking"]["uri"]).get_run(run.info.run_id).inputs.dataset_inputs}
    assert {"mnli/train/en", "mlm/train/qca", "mlm/train/qso"} <= names
    from ray_xt.report import scores_frame, statistics

    assert "mlm_minus_en" in statistics(scores_frame(records))
