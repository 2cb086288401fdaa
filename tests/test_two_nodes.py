"""A cluster of two nodes of their own: the shipped `clusters/onprem.yaml`, a head and a worker, each in network,
PID, mount and UTS namespaces this test makes (tests/netns_nodes.py), joined over SSH by `ray up` and Ray's own
autoscaler exactly as two machines would be. The smoke study's trials run on both nodes, its stage records,
checkpoints and features meet on the shared folder, and when the worker node dies mid-sweep (every process of it
at once) its trial is retried from its last checkpoint on the head and the study finishes.

The cluster file differs from the shipped one only where this machine must: the nodes' addresses, SSH user and
key, `/mnt/shared` as a folder here, and the prebuilt virtualenv instead of `make install`. Needs root, iproute2,
openssh-server and rsync: skipped without them, failed instead when RAY_XT_REQUIRE_CLUSTER_TEST=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import netns_nodes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STUDY = "experiments/cluster_smoke.yaml"


@pytest.fixture(scope="module")
def nodes():
    why = netns_nodes.missing()
    if why:
        if os.environ.get("RAY_XT_REQUIRE_CLUSTER_TEST") == "1":
            pytest.fail(f"the two-node cluster test cannot run: {why}")
        pytest.skip(why)
    # outside /tmp/ray (each node mounts its own there) and readable from every node's mount namespace
    folder = Path(tempfile.mkdtemp(prefix="rxnodes-", dir="/var/tmp"))
    found = netns_nodes.start(folder)
    yield found
    netns_nodes.stop(found)
    shutil.rmtree(folder, ignore_errors=True)


def cluster_file(nodes: netns_nodes.Nodes, shared: Path, folder: Path) -> Path:
    head, worker = nodes.nodes
    raw = yaml.safe_load((ROOT / "clusters" / "onprem.yaml").read_text())
    raw["cluster_name"] = f"ray-xt-2n-{os.getpid()}"
    raw["provider"].update(head_ip=head.address, worker_ips=[worker.address])
    raw["auth"] = {"ssh_user": nodes.user, "ssh_private_key": str(nodes.key)}
    assert "make install" in raw["setup_commands"][0]
    raw["setup_commands"][0] = f"ln -sfn {VENV} ~/ray-xt/.venv"
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False).replace("/mnt/shared", str(shared)))
    return path


def make(target: str, cluster: Path, env: dict, *assignments: str, timeout: float = 900) -> str:
    done = subprocess.run(["make", target, f"CLUSTER={cluster}", *assignments], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


def alive_nodes(nodes: netns_nodes.Nodes) -> int:
    head = nodes.nodes[0]
    done = nodes.ssh(head, "~/ray-xt/.venv/bin/python -c 'import ray; ray.init(address=\"auto\", "
                           "logging_level=\"ERROR\"); print(\"ALIVE\", sum(n[\"Alive\"] for n in ray.nodes()))'",
                     timeout=120)
    found = re.search(r"ALIVE (\d+)", done.stdout)
    return int(found.group(1)) if found else 0


def trial_results(study: Path) -> dict[str, list[dict]]:
    """Every trial's reported results (Tune's result.json: node_ip, training_iteration, ...), by trial folder."""
    found = {}
    for result in (study / "tune").glob("*/*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        found[f"{result.parent.parent.name}/{result.parent.name}"] = lines
    return found


@pytest.mark.timeout(2400)
def test_a_study_runs_on_two_nodes_and_survives_losing_the_worker(nodes):
    head, worker = nodes.nodes
    folder = nodes.home.parent
    shared = folder / "shared"
    shared.mkdir()
    cluster = cluster_file(nodes, shared, folder)
    client_tmp = Path(tempfile.mkdtemp(prefix="rxn", dir="/tmp"))  # the user's machine: its own Ray temp folder
    env = {**os.environ, "RAY_TMPDIR": str(client_tmp)}
    storage = shared / "results"
    study = storage / "cluster_smoke"
    try:
        make("cluster-up", cluster, env)
        deadline = time.monotonic() + 600  # the head's autoscaler sets the worker up over SSH, as on real machines
        while alive_nodes(nodes) < 2:
            assert time.monotonic() < deadline, "the worker node did not join within 10 minutes: " + \
                nodes.ssh(head, "tail -n 40 /tmp/ray/session_latest/logs/monitor.log").stdout
            time.sleep(5)
        # each node its own: the worker's `ray stop` (its start commands begin with it) left the head running,
        # and its home holds its own copy of the checkout and the token
        assert nodes.ssh(worker, "test -f ~/ray-xt/Makefile && test -f ~/.ray/auth_token && echo own").stdout.strip() \
            == "own"
        # one raylet in each node's PID namespace, though both run on this machine
        assert [nodes.ssh(n, "pgrep -c -x raylet").stdout.strip() for n in (head, worker)] == ["1", "1"]

        log = folder / "submit.log"
        with open(log, "w") as out:
            submitting = subprocess.Popen(
                ["make", "cluster-submit", f"CLUSTER={cluster}", f"EXP={STUDY}", f"CLUSTER_STORAGE={storage}",
                 # trials long enough to be killed mid-way (a micro epoch takes ~0.2 s), none stopped early by ASHA
                 "RUN_OPTIONS=--set trial.epochs=80 --set scheduler.enabled=false"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        # the worker node dies while one of its trials is mid-sweep (reported, not finished)
        deadline = time.monotonic() + 900
        on_worker: str | None = None
        while on_worker is None:
            assert submitting.poll() is None, log.read_text()[-5000:]
            assert time.monotonic() < deadline, "no trial ran on the worker node:\n" + log.read_text()[-5000:]
            for trial, results in trial_results(study).items():
                if results and results[-1].get("node_ip") == worker.address and results[-1]["training_iteration"] < 40:
                    on_worker = trial
            time.sleep(0.5)
        reported_before = max(r["training_iteration"] for r in trial_results(study)[on_worker])
        worker.kill()
        assert not worker.processes(), f"processes of the killed worker node still run: {worker.processes()}"
        submitting.wait(timeout=1200)
        out = log.read_text()
        assert submitting.returncode == 0 and "SUCCEEDED" in out, out[-6000:]

        results = trial_results(study)
        nodes_used = {r.get("node_ip") for lines in results.values() for r in lines}
        assert {head.address, worker.address} <= nodes_used, nodes_used
        retried = [r for r in results[on_worker] if r.get("node_ip") == head.address]
        assert retried, f"trial {on_worker} was not retried on the head: {results[on_worker]}"
        # from its last checkpoint: the retry's first report continues the worker's count instead of starting at 1
        on_the_worker = max(r["training_iteration"] for r in results[on_worker] if r.get("node_ip") == worker.address)
        assert reported_before <= on_the_worker < 80
        assert 1 < retried[0]["training_iteration"] <= on_the_worker + 1, (on_the_worker, retried[0])
        assert retried[0]["iterations_since_restore"] == 1 and retried[-1]["training_iteration"] == 80
        records = sorted((study / "stages").glob("*.json"))
        assert len(records) == 3 and all(json.loads(r.read_text())["sweep"] for r in records), records
        assert list((study / "features").iterdir()) and list((study / "tune").glob("*/*/checkpoint_*"))
        assert (study / "report" / "comparison.md").is_file()
        assert "SUCCEEDED" in make("cluster-status", cluster, env)
    finally:
        subprocess.run(["make", "cluster-down", f"CLUSTER={cluster}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
        shutil.rmtree(client_tmp, ignore_errors=True)
