"""What sweeps keep of their checkpoints (ray_xt.retention), on real Ray Tune: a running trial keeps the DeepSpeed
state only in its latest checkpoint; a finished sweep keeps its best checkpoint's model alone. And what a reused
trial process holds when its next trial starts: nothing of the last one."""

import json
from pathlib import Path

import pytest

from ray_xt.retention import prune_finished_sweep
from ray_xt.storage import remove, subfolders
from ray_xt.sweep import SweepSettings, run_sweep

pytestmark = pytest.mark.integration

SCORES = [0.2, 0.9, 0.5, 0.4]  # the best report is the second; the latest the fourth


def reporting_trial(config: dict) -> None:
    """Four reports, each with a checkpoint laid out as ray_xt.loop writes one (ds/ beside model/)."""
    import tempfile

    from ray import tune

    for i, score in enumerate(SCORES):
        with tempfile.TemporaryDirectory() as tmp:
            for part in ("ds", "model"):
                (Path(tmp) / part).mkdir()
                (Path(tmp) / part / "weights.bin").write_bytes(b"x" * 1000)
            (Path(tmp) / "state.json").write_text(json.dumps({"step": i + 1}))
            tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(tmp))


def failing_trial(config: dict) -> None:
    """The same reports, then an error: Tune may retry such a trial from its latest checkpoint."""
    reporting_trial(config)
    raise RuntimeError("the node went away")


SETTINGS = SweepSettings(learning_rate_low=1e-4, learning_rate_high=1e-3, initial_learning_rate=None, num_samples=1,
                         max_concurrent=1, search_seed=0, asha=False, grace_period=1, reduction_factor=2, max_reports=4,
                         max_failures=0, cpus=1, gpus=0)


def _kept_checkpoints(experiment: Path) -> list[Path]:
    return sorted(Path(subfolders(str(experiment))[0]).glob("checkpoint_*"))


@pytest.fixture
def trials_by_value():
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the trials run in Ray workers


def test_an_ended_trial_keeps_no_optimizer_state_and_a_finished_sweep_only_its_best_model(tmp_path, ray_local,
                                                                                          trials_by_value):
    outcome = run_sweep("retention", str(tmp_path / "tune"), reporting_trial, SETTINGS, [])
    kept = _kept_checkpoints(tmp_path / "tune" / "retention")
    # Tune's num_to_keep=1: the best (index 1) and the latest (index 3); neither keeps ds/ once the trial ended
    assert [c.name for c in kept] == ["checkpoint_000001", "checkpoint_000003"]
    assert not any((c / "ds").exists() for c in kept) and all((c / "model").is_dir() for c in kept)
    assert outcome.best_score == 0.9 and Path(outcome.best_model_dir) == kept[0] / "model"

    assert prune_finished_sweep(str(tmp_path / "tune" / "retention"), outcome.best_model_dir) == 1
    assert _kept_checkpoints(tmp_path / "tune" / "retention") == [kept[0]]
    assert sorted(p.name for p in kept[0].iterdir()) == ["model", "state.json"]


def test_a_trial_that_may_be_retried_keeps_optimizer_state_in_its_latest_checkpoint_only(tmp_path, ray_local,
                                                                                          trials_by_value):
    run_sweep("retention", str(tmp_path / "tune"), failing_trial, SETTINGS, [])
    best, latest = _kept_checkpoints(tmp_path / "tune" / "retention")
    assert not (best / "ds").exists() and (best / "model").is_dir()
    assert (latest / "ds" / "weights.bin").is_file()  # what a retry resumes from


def test_storage_removal_and_listing_on_a_uri(tmp_path):
    """The same helpers through pyarrow's filesystem (a file:// URI stands in for s3:// or gs://)."""
    for name in ("trial_a/checkpoint_000000/ds", "trial_a/checkpoint_000000/model", "trial_b/train/checkpoint_0/ds"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "x.bin").write_bytes(b"x")
    uri = f"file://{tmp_path}"
    assert subfolders(uri) == [f"{uri}/trial_a", f"{uri}/trial_b"]
    assert prune_finished_sweep(uri, f"{uri}/trial_a/checkpoint_000000/model") == 1
    assert not (tmp_path / "trial_a/checkpoint_000000/ds").exists() and (tmp_path / "trial_a/checkpoint_000000/model").is_dir()
    assert not (tmp_path / "trial_b/train/checkpoint_0").exists()
    remove(f"{uri}/trial_a")
    remove(f"{uri}/not_there")  # nothing to delete: no error
    assert not (tmp_path / "trial_a").exists()


@pytest.mark.parametrize("warm_trainers", [True, False], ids=["warm-host", "reused-tune-actor"])
def test_a_reused_trial_process_starts_each_trial_holding_nothing_of_the_last(tmp_path, micro_cache, ray_local,
                                                                              warm_trainers):
    """Three trials one after another (max_concurrent 1) run in one process: a warm trainer host, or a reused Tune
    actor. Each reports what its process held as it began (ray_xt.loop.held_memory); after the first, no engine
    and no parameter of an earlier trial may be alive (on a GPU they would sit in device memory)."""
    from conftest import tiny_study
    from ray_xt.config import parse_study
    from ray_xt.study import StudyDriver

    cfg = parse_study(tiny_study(tmp_path, micro_cache, search={"num_samples": 3, "max_concurrent": 1},
                                 scheduler={"enabled": False}, trial={"epochs": 1},
                                 warm_trainers=warm_trainers))
    StudyDriver(cfg, log=lambda m: None).run(progress=False)
    firsts = [json.loads(p.read_text().splitlines()[0])
              for p in sorted((tmp_path / "results" / "tiny" / "tune").glob("*/*/result.json"))]
    assert len(firsts) == 3
    process = "host_pid" if warm_trainers else "pid"
    by_process: dict = {}
    for first in sorted(firsts, key=lambda r: r["trial_entry_time"]):
        by_process.setdefault(first[process], []).append(first)
    reused = [later for runs in by_process.values() for later in runs[1:]]
    assert reused, f"no two trials shared a process: {[f[process] for f in firsts]}"
    for first in reused:
        assert first["memory.engines_at_start"] == 0 and first["memory.parameters_at_start"] == 0, first
