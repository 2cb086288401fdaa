"""Worker-group trials: one Tune trial trained by a Ray Train TorchTrainer of 2 CPU workers, each a rank of
one DeepSpeed engine (gloo), on real Ray, DeepSpeed and MLflow."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import tiny_study
from ray_xt.config import ConfigError, parse_study
from ray_xt.loop import deepspeed_config, rank_share
from ray_xt.study import StudyDriver

pytestmark = pytest.mark.integration


def test_ranks_share_the_global_batch_without_losing_or_repeating_examples():
    idx = list(range(10))
    shares = [rank_share(idx, r, 2) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == idx and len(shares[0]) == len(shares[1]) == 5
    assert rank_share([7], 1, 2) == [7]  # a one-example last batch: no rank trains on nothing
    assert deepspeed_config(32, 2, False, world_size=2)["train_micro_batch_size_per_gpu"] == 16
    with pytest.raises(ValueError, match="does not split evenly over 3 workers"):
        deepspeed_config(32, 2, False, world_size=3)


def test_a_batch_that_does_not_split_over_the_workers_is_refused_before_ray(tmp_path):
    study = tiny_study(tmp_path, tmp_path, trial={"workers": 3, "batch_size": 32})
    with pytest.raises(ConfigError, match=r"trial.batch_size: 32 \(task pawsx, scale micro-s\) does not split "
                                          r"evenly over 3 workers"):
        parse_study(study)


def _child_runs(cfg):
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name(f"ray_xt/{cfg.name}")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_a_worker_group_trial_trains_one_engine_across_two_ranks(tmp_path, micro_cache, ray_local, zero_stage):
    from transformers import AutoModelForSequenceClassification

    cfg = parse_study(tiny_study(tmp_path, micro_cache, trial={"workers": 2, "zero_stage": zero_stage},
                                 search={"num_samples": 1, "max_concurrent": 1}, scheduler={"enabled": False}))
    record = StudyDriver(cfg, log=lambda m: None).run(progress=False)[0]

    ckpt = Path(record["sweep"]["best_model_dir"]).parent
    assert ckpt.parent.name == "train"  # Ray Train's run inside the Tune trial's folder
    # the finished sweep kept the best checkpoint as the model alone (the resume test below needs the ranks' shards)
    assert not (ckpt / "ds").exists() and [p for p in ckpt.parent.glob("checkpoint_*") if p.is_dir()] == [ckpt]
    fixed = json.loads((ckpt / "trial_config.json").read_text())["fixed"]
    assert fixed["workers"] == 2 and fixed["zero_stage"] == zero_stage
    # the saved encoder is whole (ZeRO-3 partitions parameters: they are gathered before save_pretrained)
    model = AutoModelForSequenceClassification.from_pretrained(str(ckpt / "model"))
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] > 100 and float(embeddings.detach().abs().sum()) > 0
    assert set(record["zero_shot"]) == {"en", "qca", "qso"}  # the target stage evaluated that checkpoint

    # Tune (and through it MLflow) saw rank 0's reports: 5 steps per epoch, one evaluation per epoch
    client, children = _child_runs(cfg)
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert [h.step for h in client.get_metric_history(children[0].info.run_id, "score")] == [5, 10]


def _train_worker_pids() -> list[int]:
    """Ray Train worker processes of this test session's Ray instance only (children of its raylet; Ray
    titles an actor's process ``ray::<class>``), never another Ray on the machine."""
    import psutil
    import ray

    raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
    return [p.pid for p in psutil.Process(raylet).children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline())]


def _kill_a_train_worker_after_the_first_checkpoint(storage: Path, killed: list, stop: threading.Event):
    while not stop.is_set():
        if list(storage.rglob("train/checkpoint_*/state.json")):
            pids = _train_worker_pids()
            if pids:
                os.kill(pids[-1], signal.SIGKILL)
                killed.append(pids[-1])
                return
        time.sleep(0.2)


def test_a_killed_worker_restarts_the_group_from_its_last_checkpoint(tmp_path, micro_cache, ray_local):
    """SIGKILL of one rank mid-trial: Ray Train restarts the worker group, every rank resumes from the last
    checkpoint (no evaluation step is reported twice) and the trial finishes once in MLflow."""
    cfg = parse_study(tiny_study(tmp_path, micro_cache, trial={"workers": 2, "epochs": 6},
                                 search={"num_samples": 1, "max_concurrent": 1}, scheduler={"enabled": False},
                                 max_failures=2))
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_train_worker_after_the_first_checkpoint,
                              args=(tmp_path / "results", killed, stop), daemon=True)
    killer.start()
    try:
        record = StudyDriver(cfg, log=lambda m: None).run(progress=False)[0]
    finally:
        stop.set()
        killer.join()
    assert killed, "the trial ended before a worker could be killed"
    client, children = _child_runs(cfg)
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    steps = [h.step for h in client.get_metric_history(children[0].info.run_id, "score")]
    assert steps == [5, 10, 15, 20, 25, 30], steps  # resumed: a restart from scratch would report 5 again
    assert record["sweep"]["trials"][0]["status"] == "TERMINATED"
