"""Fault tolerance on a real multi-node Ray cluster of processes on this machine (`ray start --head` plus
worker nodes with their own resources), started and stopped by the tests: a killed worker node mid-sweep,
and eight concurrent DeepSpeed trials on one node."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import tiny_study

# each test takes 1.5-2.5 minutes here; the bound makes a hung cluster fail its test (with the run's log) instead
# of stalling the whole CI run
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
RUN_TIMEOUT = 600  # seconds a `ray-xt run` may take before its test fails with the run's log
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raylets() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet/raylet"], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


class LocalCluster:
    """A head (no CPUs: it only schedules) and worker nodes, each a `ray start` of its own."""

    def __init__(self):
        self.port = _free_port()
        self.temp = tempfile.mkdtemp(prefix="rxt_", dir="/tmp")  # short: Ray's socket paths have a length limit
        # token auth is Ray's default for `ray start`; fast node-death detection for the test
        # a token of this cluster's own: a fresh machine has no ~/.ray/auth_token (`make cluster-up` creates one
        # for real clusters), and the test must not depend on another test or command having made it
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
                    "RAY_ADDRESS": ""}
        self.nodes: dict[str, int] = {}  # name -> raylet pid
        self.drivers: list[subprocess.Popen] = []  # `ray-xt run` processes started against this cluster
        before = _raylets()  # other Ray instances on this machine are never touched
        # started as clusters/*.yaml start their heads (no worker preload)
        self._ray(["start", "--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                   f"--temp-dir={self.temp}"])
        self.head_raylets = _raylets() - before

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray(self, args: list[str]) -> None:
        subprocess.run([str(BIN / "ray"), *args], env=self.env, check=True, capture_output=True, timeout=120)

    def add_node(self, name: str, cpus: int) -> None:
        before = _raylets()
        self._ray(["start", f"--address={self.address}", f"--num-cpus={cpus}", f'--resources={{"{name}": 1}}'])
        self.nodes[name] = (_raylets() - before).pop()

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's raylet and its workers: a machine lost, no clean shutdown."""
        pid = self.nodes.pop(name)
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        for driver in self.drivers:  # a test that failed early leaves its study's driver running
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        # only this cluster's processes (a machine-wide `ray stop` would kill other Ray instances too)
        for pid in [*self.nodes.values(), *self.head_raylets]:
            for p in [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                    text=True).stdout.split())]:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        subprocess.run(["pkill", "-9", "-f", self.temp], capture_output=True)  # GCS and helpers of this session


@pytest.fixture
def cluster():
    c = LocalCluster()
    try:
        yield c
    finally:
        c.stop()


def test_a_trial_on_a_joining_node_gets_a_warm_trainer_host_on_that_node(cluster):
    """The study's TrainerPool lives on the driver's node (the head); a trial on a node that joined later
    leases a host there (its checkpoint folders are local files), with torch and DeepSpeed imported (and frozen
    out of the garbage collector's scans), and gets the same host back once the first lease is released."""
    cluster.add_node("node_a", cpus=1)
    code = (
        "import ray, sys\n"
        "from ray_xt.trainer_hosts import pool_name, start_pool\n"
        "ray.init(address=sys.argv[1])\n"
        "pool = start_pool(pool_name())\n"
        "@ray.remote(num_cpus=1, resources={'node_a': 0.01})\n"
        "def lease_here(pool):\n"
        "    node = ray.get_runtime_context().get_node_id()\n"
        "    index, host, created = ray.get(pool.lease.remote(node))\n"
        "    info = ray.get(host.ready.remote())\n"
        "    ray.get(pool.release.remote(index))\n"
        "    again = ray.get(pool.lease.remote(node))\n"
        "    return [info['node_id'] == node, info['missing'], created, again[0] == index, again[2],\n"
        "            info['frozen_objects'] > 100_000]\n"
        "print(ray.get(lease_here.remote(pool)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, cluster.address], env=cluster.env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[True, [], True, True, False, True]"


def _run(cluster: LocalCluster, study: dict, tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([str(BIN / "ray-xt"), "run", str(path), "--address", cluster.address], cwd=tmp_path,
                            env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.drivers.append(proc)
    return proc


def _wait(proc: subprocess.Popen, tmp_path: Path) -> None:
    """The run ends successfully within RUN_TIMEOUT; else the test fails with the end of the run's log."""
    try:
        code = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        code = f"still running after {RUN_TIMEOUT} s"
    assert code == 0, f"ray-xt run: {code}\n" + (tmp_path / "run.log").read_text()[-4000:]


def _trial_runs(study: dict):
    client = MlflowClient(study["tracking"]["uri"])
    exp = client.get_experiment_by_name("ray_xt/tiny")
    return [r for r in client.search_runs([exp.experiment_id], max_results=1000) if "mlflow.parentRunId" in r.data.tags]


def _states(runs, errors: bool = False) -> list:
    """Each trial run's MLflow status (with its recorded error, for a failure message)."""
    return [(r.info.status, r.data.tags.get("error", "")) if errors else r.info.status for r in runs]


def _replace_node_b_once_a_checkpoint_exists(cluster, proc, tmp_path, pattern: str) -> None:
    """Wait until a checkpoint matching ``pattern`` is written mid-study, then node_b dies and node_c joins.
    (Tune keeps a trial's best two checkpoints: an early one can be gone again before a poll sees it, so a
    pattern that any first checkpoint matches is the robust one.)"""
    tune_dir = tmp_path / "results" / "tiny" / "tune"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(tune_dir.rglob(pattern)):
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
    cluster.kill_node("node_b")
    cluster.add_node("node_c", 1)  # a replacement machine joins
    _wait(proc, tmp_path)


def test_killed_worker_node_mid_sweep_retries_from_checkpoint(cluster, tmp_path):
    cluster.add_node("node_a", 1)
    cluster.add_node("node_b", 1)
    study = tiny_study(tmp_path, tmp_path / "cache", trial={"epochs": 3, "evals_per_epoch": 2, "cpus": 1},
                       micro={"train_size": 600}, search={"num_samples": 2, "max_concurrent": 2},
                       scheduler={"enabled": False}, max_failures=3)
    # both trials run (one per node) and at least one has written a checkpoint when node_b dies
    _replace_node_b_once_a_checkpoint_exists(cluster, _run(cluster, study, tmp_path), tmp_path, "checkpoint_0*")
    tune_dir = tmp_path / "results" / "tiny" / "tune"
    log = (tmp_path / "run.log").read_text()
    assert "stage 1/1" in log and "done in" in log
    # the lost trial failed once (Tune recorded the error) and was resumed, not restarted from scratch
    errors = list(tune_dir.rglob("error.txt"))
    assert errors, "no trial was interrupted by the node loss"
    trials = _trial_runs(study)
    assert _states(trials) == ["FINISHED"] * 2, _states(trials, errors=True)  # each trial once in MLflow
    assert len({r.data.tags["ray_xt.key"] for r in trials}) == 2


def test_eight_concurrent_deepspeed_trials_on_one_node(cluster, tmp_path):
    cluster.add_node("big", 8)
    study = tiny_study(tmp_path, tmp_path / "cache", trial={"epochs": 1, "cpus": 1}, micro={"train_size": 160},
                       search={"num_samples": 8, "max_concurrent": 8}, scheduler={"enabled": False})
    _wait(_run(cluster, study, tmp_path), tmp_path)
    trials = _trial_runs(study)
    assert _states(trials) == ["FINISHED"] * 8, _states(trials, errors=True)
    assert not list((tmp_path / "results" / "tiny" / "tune").rglob("error.txt"))  # no rendezvous port clash


def test_worker_group_trial_survives_losing_the_node_of_one_rank(cluster, tmp_path):
    """A trial of 2 Ray Train workers (one DeepSpeed rank per node, 1 CPU each): the node of one rank dies
    mid-trial, a replacement joins, the worker group restarts there and resumes from its last checkpoint."""
    cluster.add_node("node_a", 1)
    cluster.add_node("node_b", 1)
    # SPREAD: the default STRICT_PACK would wait forever for a node that holds both ranks
    study = tiny_study(tmp_path, tmp_path / "cache", trial={"workers": 2, "epochs": 6, "cpus": 1, "placement": "SPREAD"},
                       search={"num_samples": 1, "max_concurrent": 1}, scheduler={"enabled": False}, max_failures=3)
    _replace_node_b_once_a_checkpoint_exists(cluster, _run(cluster, study, tmp_path), tmp_path,
                                             "train/checkpoint_*/state.json")
    trials = _trial_runs(study)
    assert _states(trials) == ["FINISHED"], _states(trials, errors=True)
    steps = [h.step for h in MlflowClient(study["tracking"]["uri"]).get_metric_history(trials[0].info.run_id, "score")]
    assert steps == [5, 10, 15, 20, 25, 30], steps  # resumed from the checkpoint, no evaluation reported twice
