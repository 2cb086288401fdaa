"""Warm trainer hosts (ray_xt.trainer_hosts) on a real local Ray and real DeepSpeed engines: a study's sweeps
share them, a cancelled run frees its host at once, and a run's error reaches the driving trial."""

import dataclasses
import json
import time
from pathlib import Path

import pytest

from conftest import tiny_study, tune_env_workers
from ray_xt.config import parse_study
from ray_xt.loop import TrialSpec
from ray_xt.study import StudyDriver
from ray_xt.trainer_hosts import pool_name, start_pool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory, micro_cache, ray_local):
    """Two stages (seeds 0 and 1) run one after another, 2 trials each, 2 at a time."""
    tmp = tmp_path_factory.mktemp("hosts")
    cfg = parse_study(tiny_study(tmp, micro_cache, seeds=[0, 1], parallel_stages=1))
    started = time.time()
    records = StudyDriver(cfg, log=lambda m: None).run(progress=False)
    return tmp, records, started


def _first_reports(tmp: Path, record: dict) -> list[dict]:
    key = record["stage"]["stage_key"][:8]
    files = sorted((tmp / "results" / "tiny" / "tune").glob(f"*-{key}/*/result.json"))
    return [json.loads(f.read_text().splitlines()[0]) for f in files]


def test_a_study_s_sweeps_train_in_the_same_warm_hosts(two_sweeps):
    tmp, records, _ = two_sweeps
    reports = [_first_reports(tmp, r) for r in records]
    assert [len(r) for r in reports] == [2, 2]
    hosts = [{r["host_pid"] for r in stage} for stage in reports]
    actors = [{r["pid"] for r in stage} for stage in reports]
    assert len(hosts[0] | hosts[1]) <= 2  # one host per concurrent trial, for the whole study
    assert hosts[0] & hosts[1]  # the second sweep trained in processes the first one warmed
    assert not actors[0] & actors[1]  # although Tune started new trial actors for it
    assert not (hosts[0] | hosts[1]) & (actors[0] | actors[1])  # trial actors only drove the hosts
    assert all("setup.host" in r for stage in reports for r in stage)


def test_each_trial_actor_has_a_worker_prestarted_for_the_next_sweeps(two_sweeps):
    """ray_xt.trial.run_trial's side of ray_xt.trial_workers: once its host runs, a trial actor asks its raylet
    for a worker in its own (Tune's) environment; the study itself prestarts none when its trials are hosted."""
    tmp, records, started = two_sweeps
    last_reports = [json.loads(f.read_text().splitlines()[-1]) for record in records
                    for f in (tmp / "results" / "tiny" / "tune").glob(f"*-{record['stage']['stage_key'][:8]}/*/result.json")]
    assert len(last_reports) == 4 and all(r["actor_replacement"] == 1.0 for r in last_reports)
    deadline = time.time() + 60  # and the last sweep's replacements are there, waiting
    while not tune_env_workers(idle_only=True, created_after=started) and time.time() < deadline:
        time.sleep(0.5)
    assert tune_env_workers(idle_only=True, created_after=started)


def _spec(record: dict, pool: str, **changes) -> TrialSpec:
    return dataclasses.replace(TrialSpec.from_record(record["trial_spec"]), trainer_pool=pool, **changes)


def _wait_idle(pool, index: int) -> bool:
    deadline = time.time() + 30
    while time.time() < deadline:
        import ray

        if ray.get(pool.describe.remote())[index]["idle"]:
            return True
        time.sleep(0.2)
    return False


def test_a_cancelled_run_frees_its_host_and_an_error_reaches_the_trial(two_sweeps, ray_local):
    ray = ray_local
    _, records, _ = two_sweeps
    name = pool_name()
    pool = start_pool(name)
    try:
        node = ray.get_runtime_context().get_node_id()
        index, host, created = ray.get(pool.lease.remote(node))
        assert created
        # a long run (50 epochs): its first report arrives, then the driving trial stops it (as on an ASHA stop)
        spec = _spec(records[0], name, epochs=50.0)
        ray.get(host.start.remote("long", {"learning_rate": 3e-4}, spec, None, None, time.time()))
        kind, metrics, directory = ray.get(host.next.remote("long"))
        assert kind == "report" and metrics["host_pid"] == ray.get(host.ready.remote())["pid"]
        assert (Path(directory) / "model" / "config.json").is_file()  # on this node until acknowledged
        ray.get(host.cancel.remote("long"))
        assert _wait_idle(pool, index), "a cancelled run kept its host"
        assert not Path(directory).exists()  # the unacknowledged checkpoint was cleaned up
        again, same_host, created = ray.get(pool.lease.remote(node))
        assert again == index and not created

        # a run that fails: its exception, with the host's traceback, is what the driving trial raises
        bad = dataclasses.replace(spec, tasks=(dataclasses.replace(spec.tasks[0], train_features="/nonexistent"),))
        ray.get(same_host.start.remote("bad", {"learning_rate": 3e-4}, bad, None, None, time.time()))
        kind, err, _ = ray.get(same_host.next.remote("bad"))
        assert kind == "error" and isinstance(err, Exception)
        assert "/nonexistent" in str(err) and any("in the trainer host" in n for n in err.__notes__)
        assert _wait_idle(pool, index), "a failed run kept its host"
    finally:
        ray.kill(pool)


def test_a_trial_whose_pool_is_gone_trains_in_its_own_process(two_sweeps, ray_local, tmp_path):
    """The pool dies with its node or the study's driver; a trial that cannot lease a host must still train
    (in its own process, as without warm hosts) rather than fail every retry."""
    from ray import tune

    from ray_xt.trial import run_trial

    _, records, _ = two_sweeps
    spec = _spec(records[0], pool_name())  # a pool name no actor has
    tuner = tune.Tuner(tune.with_parameters(run_trial, spec=spec), param_space={"learning_rate": 3e-4},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="no_pool", verbose=0))
    result = tuner.fit()[0]
    assert result.error is None
    assert "host_pid" not in result.metrics and result.metrics["score"] >= 0.0
    assert result.checkpoint is not None
