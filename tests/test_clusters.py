"""Cluster YAMLs: valid by Ray's own autoscaler schema, installing the project, bound to localhost."""

from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from ray_xt.local_ray import IDLE_WORKER_SECONDS

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = sorted((ROOT / "clusters").glob("*.yaml"))


def test_every_cloud_is_covered():
    providers = {yaml.safe_load(p.read_text())["provider"]["type"] for p in CLUSTERS}
    assert providers == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_cluster_yaml_passes_ray_validation_and_our_rules(path):
    raw = yaml.safe_load(path.read_text())
    validate_config(prepare_config(raw))  # Ray's schema, after Ray fills in the provider's defaults
    setup = " ".join(raw["setup_commands"])
    assert "make install" in setup and "TORCH_SPEC" in setup  # CUDA torch chosen explicitly
    head = " ".join(raw["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head  # dashboard only on the head's localhost
    # Ray's GCS and client server bind the cluster IP: every node must demand the cluster's token
    starts = raw["head_start_ray_commands"] + raw["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert raw["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    # the cluster's workers preload nothing, as a local ray-xt run's (a preload runs in every new worker, every
    # sweep's trial actors included)
    assert not any("preload_python_modules" in c for c in starts)
    # and keep idle task workers as long (stage drivers and evaluations reuse them instead of new processes)
    keep = f"RAY_idle_worker_killing_time_threshold_ms={IDLE_WORKER_SECONDS * 1000} "
    assert all(keep in c for c in starts if "ray start" in c)
    # one MLflow server per head, on its localhost (head_mlflow.sh binds 127.0.0.1 and replaces an earlier one)
    # its runs, users and artifacts on the shared storage (a replaced head keeps them), with MLflow's basic auth
    assert ("clusters/head_mlflow.sh start --auth-db sqlite:////mnt/shared/mlflow/auth.db "
            "--backend-store-uri sqlite:////mnt/shared/mlflow/mlflow.db") in head
    assert "--artifacts-destination /mnt/shared" in head
    assert raw["file_mounts"].get("~/.ray_xt/mlflow_credentials") == "~/.ray_xt/mlflow_credentials"
    assert "MLFLOW_TRACKING_USERNAME=" in setup and "MLFLOW_TRACKING_PASSWORD=" in setup
    # a fixed cluster cannot add nodes: Ray's "Add suitable node types" for queued trials is switched off there only
    assert ("RAY_SCHEDULER_EVENTS=0" in setup) == (raw["provider"]["type"] == "local")
    if raw["provider"]["type"] == "local":  # worker counts follow worker_ips
        assert "min_workers" not in raw and "max_workers" not in raw
        # autoscaler v1: v2 never starts a local-provider worker (tests/test_two_nodes.py)
        assert "RAY_enable_autoscaler_v2=0 " in head
    assert "--host 127.0.0.1" in (ROOT / "clusters" / "head_mlflow.sh").read_text()
    # settings are literal: nothing from the user's shell (`${VAR:-default}`) silently takes a default on a node
    assert "${" not in path.read_text()
    # the project's environment is written to its own file, sourced once from .bashrc however often `ray up` runs
    assert "> ~/.ray_xt_env" in setup and "grep -qxF '. ~/.ray_xt_env' ~/.bashrc" in setup
    assert ">> ~/.bashrc" not in setup.replace("echo '. ~/.ray_xt_env' >> ~/.bashrc", "")
    # a lower hard limit of open files does not hide behind the `;` of `ulimit -n 65536; ray start`
    assert all('ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)";' in c for c in starts if "ray start" in c)
    assert "/mnt/shared" in setup or "/mnt/shared" in " ".join(raw.get("head_setup_commands", []))
    assert path.read_text().splitlines()[0].startswith("# ray_xt on")  # each opens with how to use it


@pytest.mark.parametrize("path", [p for p in CLUSTERS if yaml.safe_load(p.read_text()).get("available_node_types")],
                         ids=lambda p: p.name)
def test_every_gpu_node_type_declares_what_it_offers(path):
    """Ray's GCP provider fills in only TPU resources: a GPU node type with `resources: {}` is one the autoscaler
    believes offers nothing, so no trial's request ever starts it."""
    raw = yaml.safe_load(path.read_text())
    workers = {name: t for name, t in raw["available_node_types"].items() if name != raw["head_node_type"]}
    assert workers
    for name, node_type in workers.items():
        offered = node_type.get("resources", {})
        assert offered.get("CPU", 0) > 0 and offered.get("GPU", 0) > 0 and offered.get("memory", 0) > 0, (name, offered)


def test_validation_rejects_a_typo():
    raw = yaml.safe_load(CLUSTERS[0].read_text())
    raw["max_wrokers"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_wrokers"):
        validate_config(prepare_config(raw))


def test_a_study_path_given_to_cluster_submit_resolves_in_the_checkout(tmp_path, monkeypatch):
    """`ray submit` runs cluster_entry.py from the SSH user's home: `experiments/demo.yaml` is the checkout's."""
    from ray_xt.cluster_cli import checkout_root, resolve_study_path

    monkeypatch.chdir(tmp_path)
    assert resolve_study_path("experiments/demo.yaml") == checkout_root() / "experiments" / "demo.yaml"
    (tmp_path / "mine.yaml").write_text("name: x\n")
    assert resolve_study_path("mine.yaml") == tmp_path / "mine.yaml"  # one the user put beside them wins
    assert resolve_study_path("/abs/elsewhere.yaml") == Path("/abs/elsewhere.yaml")
    assert resolve_study_path("experiments/nope.yaml") == tmp_path / "experiments/nope.yaml"  # loading names it


def test_cluster_entry_imports_the_installed_package_beside_a_folder_named_like_it(tmp_path):
    """`ray submit` runs `python ~/cluster_entry.py`: the home folder comes first on sys.path, and a folder there
    named ray_xt (a checkout, as every cluster file once mounted it) must not become an empty namespace package."""
    import os
    import shutil
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{s.getsockname()[1]}"
    (tmp_path / "ray_xt" / "experiments").mkdir(parents=True)  # a checkout folder: no __init__.py at its top
    shutil.copy(ROOT / "ray_xt" / "cluster_entry.py", tmp_path / "cluster_entry.py")
    # as `make cluster-submit` runs it, on a machine where no job server listens: the study is found in the
    # checkout and loaded, and the one error is about the job server
    done = subprocess.run([sys.executable, str(tmp_path / "cluster_entry.py"), "submit", "experiments/demo.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          # a user's shell: not this test process's, whose local Ray (an earlier test's) set RAY_AUTH_MODE
                          env={**{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}, "RAY_ADDRESS": "",
                               "HOME": str(tmp_path), "RAY_XT_JOB_SERVER": server})
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"no Ray job server answers at {server}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    plain = subprocess.run([sys.executable, "-c", "import ray_xt; print(ray_xt.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert plain.stdout.strip() == "None"  # the trap the entry script steps around is real


def test_no_cluster_file_puts_the_checkout_where_it_could_be_imported():
    for path in CLUSTERS:
        mounts = yaml.safe_load(path.read_text())["file_mounts"]
        checkout = [remote for remote, local in mounts.items() if local == "."]
        assert checkout == ["~/ray-xt"], (path.name, checkout)
        assert not Path(checkout[0]).name.isidentifier()


def test_node_local_storage_is_refused_on_a_multi_node_cluster():
    from ray_xt.study import node_local_storage

    problem = node_local_storage("results", 3)
    assert "storage: 'results' is a relative, node-local path, but this cluster has 3 nodes" in problem
    assert "/mnt/shared/results" in problem
    assert node_local_storage("results", 1) is None  # one machine: its own folder is shared with itself
    assert node_local_storage("/mnt/shared/results", 3) is None and node_local_storage("s3://b/r", 3) is None


def test_the_make_cluster_targets_pass_shared_storage_and_the_heads_tracking_server():
    import subprocess

    out = subprocess.run(["make", "-n", "scaling-study", "CLUSTER=clusters/onprem.yaml"], capture_output=True,
                         text=True, cwd=ROOT).stdout
    assert ("ray submit clusters/onprem.yaml ray_xt/cluster_entry.py -- submit experiments/scaling_study.yaml "
            "--tracking-uri http://127.0.0.1:5000 --storage /mnt/shared/results") in out
    out = subprocess.run(["make", "-n", "cluster-submit", "CLUSTER=c.yaml", "EXP=experiments/demo.yaml"],
                         capture_output=True, text=True, cwd=ROOT).stdout
    assert "--tracking-uri http://127.0.0.1:5000 --storage /mnt/shared/results" in out
    # run options reach the job, and only the report's own options reach the report
    out = subprocess.run(["make", "-n", "--no-print-directory", "cluster-submit", "cluster-report", "CLUSTER=c.yaml",
                          "EXP=e.yaml", "RUN_OPTIONS=--seeds 0 --set trial.epochs=2",
                          "REPORT_OPTIONS=--set trial.epochs=2"], capture_output=True, text=True, cwd=ROOT).stdout
    out = [line for line in out.splitlines() if "/bin/ray " in line]  # make under make prints more
    assert out[0].endswith("--storage /mnt/shared/results --seeds 0 --set trial.epochs=2")
    assert out[1].endswith("report e.yaml --tracking-uri http://127.0.0.1:5000 --storage /mnt/shared/results "
                           "--set trial.epochs=2'")


def test_a_cuda_torch_spec_that_installed_a_cpu_build_fails_make_install(tmp_path):
    """pip falls back to a CPU wheel when the CUDA index is unreachable; `make install` then fails, saying why."""
    import subprocess

    from ray_xt.torch_check import torch_problem

    cuda_spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
    assert "asks for a CUDA build, but torch 2.13.0+cpu without CUDA is installed" in torch_problem(
        cuda_spec, None, "2.13.0+cpu")
    assert torch_problem(cuda_spec, "12.8", "2.13.0+cu128") is None
    assert torch_problem("torch==2.13.0", None, "2.13.0+cpu") is None  # a CPU machine asked for the CPU build
    # the Makefile step, on this machine's CPU torch
    done = subprocess.run(["make", "--no-print-directory", "check-torch", f"TORCH_SPEC={cuda_spec}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "asks for a CUDA build" in done.stderr, done.stdout + done.stderr
    assert subprocess.run(["make", "--no-print-directory", "check-torch"], cwd=ROOT, capture_output=True,
                          timeout=120).returncode == 0
