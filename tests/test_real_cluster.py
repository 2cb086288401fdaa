"""A real cluster, brought up by Ray's own tools, driven by the README's commands.

`make cluster-up` (`ray up`) of the shipped `clusters/onprem.yaml` against this machine over SSH
(tests/local_ssh.py: sshd on 127.0.0.1:22, a key made here), then what the README tells users: `make cluster-submit`
of `experiments/cluster_smoke.yaml` (`ray submit` of cluster_entry.py, which submits the study as a Ray job on the
head and follows it) whose client is killed mid-study; a second submission and a `make cluster-up` refused while
it runs; `make cluster-status` and `make cluster-logs` (re-attached to the end); the head's MLflow (basic auth, its
store on the shared folder); the same study through `ray job submit` over `ray dashboard`'s tunnel with the
cluster's token into storage of its own, and `make cluster-report` of it; a second `make cluster-up`, and `make
cluster-down`.

The commands run as from another machine: with a Ray temp folder of their own (RAY_TMPDIR), so `ray up`'s record of
the cluster (Ray's `local` provider keeps it in <temp>/ray/cluster-<name>.state) is not the file the head's own
autoscaler reads and writes in /tmp/ray.

The cluster file differs from the shipped one only where this machine must: its address, SSH user and key (no
workers), `/mnt/shared` as a folder here, and the already-installed virtualenv instead of `make install` (the
shipped files keep installing from scratch); nothing is added to a node's environment. The head only, on this
machine's own namespaces; tests/test_two_nodes.py runs a head and a worker that are nodes of their own.

Needs root, Debian's openssh-server and rsync: skipped without them, failed instead when
RAY_XT_REQUIRE_CLUSTER_TEST=1 (.ci/run sets it after installing them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import local_ssh

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STUDY = "experiments/cluster_smoke.yaml"
MLFLOW_TUNNEL = 15000  # `ssh -L 5000:127.0.0.1:5000 ...` in the README, to a free port here
DASHBOARD_TUNNEL = 18265  # `ray dashboard --port`: the head's own 8265 is taken on this machine
GRPC_PROBES = ("/ray.rpc.NodeInfoGcsService/GetClusterId", "/ray.rpc.NodeManagerService/GetResourceLoad",
               "/ray.rpc.ObjectManagerService/Pull", "/ray.rpc.LogService/ListLogs", "/ray.rpc.RayletDriver/ClusterInfo")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    why = local_ssh.missing()
    if why:
        if os.environ.get("RAY_XT_REQUIRE_CLUSTER_TEST") == "1":
            pytest.fail(f"the real-cluster test cannot run: {why}")
        pytest.skip(why)
    node = local_ssh.start(tmp_path_factory.mktemp("ssh"))
    yield node
    local_ssh.stop(node)


def cluster_file(node: local_ssh.SSHNode, shared: Path, folder: Path) -> Path:
    raw = yaml.safe_load((ROOT / "clusters" / "onprem.yaml").read_text())
    raw["cluster_name"] = f"ray-xt-ci-{os.getpid()}"  # worker counts follow worker_ips: none here
    raw["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    raw["auth"] = {"ssh_user": node.user, "ssh_private_key": str(node.key)}
    setup = raw["setup_commands"]
    assert "make install" in setup[0]
    # the one change to what a node runs: the installed virtualenv instead of `make install` (its editable ray_xt
    # is this checkout, the same files `ray up` copied to ~/ray-xt)
    setup[0] = f"ln -sfn {VENV} ~/ray-xt/.venv"
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False).replace("/mnt/shared", str(shared)))
    return path


CLIENT_ENV: dict[str, str] = {}  # RAY_TMPDIR of "the user's machine", set by the test


def make(target: str, cluster: Path, *assignments: str, timeout: float = 900):
    result = subprocess.run(["make", target, f"CLUSTER={cluster}", *assignments], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **CLIENT_ENV})
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result.stdout + result.stderr


def mlflow_server_groups() -> set[int]:
    """Process groups of running `mlflow server`s (one per server, its web workers included)."""
    groups = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if any(a.endswith(b"bin/mlflow") for a in args[:2]) and b"server" in args:
                groups.add(os.getpgid(int(proc.name)))
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return groups


def ray_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if re.search(r"\b(gcs_server|raylet|dashboard\.py|ray::|ray_client_server|log_monitor|monitor\.py)", line)]


def listeners() -> dict[tuple[str, int], str]:
    """Listening TCP sockets: (address, port) -> the owning process's command."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        found[(address.strip("[]"), int(port))] = " ".join(fields[5:])
    return found


def exposure(address: str, port: int, token: str) -> str:
    """What the service on ``address:port`` (this machine) gives a caller without Ray's token: "nothing" (it
    demands the token: HTTP 401/403, gRPC UNAUTHENTICATED, and not with the token), "metrics" (a read-only
    Prometheus exporter), or what else it answered."""
    host = "127.0.0.1" if address in ("0.0.0.0", "*", "::") else address.removeprefix("::ffff:")
    with socket.create_connection((host, port), timeout=5) as probe:
        probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        probe.settimeout(5)
        try:
            answer = probe.recv(4096)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    if answer.startswith(b"HTTP/1"):
        def status(headers: dict) -> tuple[int, bytes]:
            request = urllib.request.Request(f"http://{host}:{port}/", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read(200)
            except urllib.error.HTTPError as err:
                return err.code, b""
        (anonymous, body), (with_token, _) = status({}), status({"Authorization": f"Bearer {token}"})
        if anonymous in (401, 403) and with_token not in (401, 403):
            return "nothing"
        return "metrics" if anonymous == 200 and body.startswith(b"# HELP") else (
            f"HTTP {anonymous} without the token ({body[:60]!r}), {with_token} with it")
    import grpc

    def code(method: str, metadata) -> grpc.StatusCode:
        channel = grpc.insecure_channel(f"{host}:{port}")
        try:
            channel.unary_unary(method)(b"", timeout=10, metadata=metadata)  # an empty request: every field default
            return grpc.StatusCode.OK
        except grpc.RpcError as err:
            return err.code()
        finally:
            channel.close()
    # a method the server has (an unknown one is UNIMPLEMENTED before any authentication): one harmless read per
    # Ray gRPC server (GCS, raylet, object manager, dashboard agent, Ray Client server)
    for method in GRPC_PROBES:
        anonymous = code(method, ())
        if anonymous != grpc.StatusCode.UNIMPLEMENTED:
            with_token = code(method, (("authorization", f"Bearer {token}"),))
            if anonymous == grpc.StatusCode.UNAUTHENTICATED and with_token != grpc.StatusCode.UNAUTHENTICATED:
                return "nothing"
            return f"gRPC {method}: {anonymous} without the token, {with_token} with it"
    return f"none of {GRPC_PROBES} is served: an unknown protocol"


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s ({process.args})")


def mlflow_login() -> tuple[str, str]:
    """The head MLflow's basic-auth login `make cluster-up` made on "the user's machine" (this one)."""
    user, _, password = Path("~/.ray_xt/mlflow_credentials").expanduser().read_text().strip().partition(":")
    return user, password


def trial_runs(experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient("http://127.0.0.1:5000")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment} on the head's server"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return [r for r in runs if "/" in r.data.tags.get("ray_xt.key", "") and not
            r.data.tags["ray_xt.key"].startswith(("stage/", "study/"))]


def wait_for_text(path: Path, text: str, process: subprocess.Popen, seconds: float = 600) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = path.read_text(errors="replace") if path.exists() else ""
        if text in out:
            return out
        assert process.poll() is None, f"{process.args} exited with {process.returncode} before {text!r}:\n{out[-4000:]}"
        time.sleep(1)
    raise AssertionError(f"{text!r} not printed in {seconds:.0f} s:\n{path.read_text()[-4000:]}")


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the laptop's Wi-Fi drops: make, ray submit and ssh die at once
    process.wait(30)


def finished_study(storage: Path) -> None:
    study = storage / "cluster_smoke"
    records = sorted((study / "stages").glob("*.json"))
    assert len(records) == 3, f"stage records in {study / 'stages'}: {records}"
    for record in records:
        assert json.loads(record.read_text())["sweep"], record
    checkpoints = list((study / "tune").glob("*/*/checkpoint_*"))  # one per finished sweep, its model alone
    sweeps = [r for r in records if json.loads(r.read_text())["sweep"].get("trials")]
    assert len(checkpoints) == len(sweeps) >= 1, f"trial checkpoints under {study / 'tune'}: {checkpoints}"
    assert not any((c / "ds").exists() for c in checkpoints)
    assert list((study / "features").iterdir()) and list((study / "predictions").iterdir())
    assert (study / "report" / "comparison.md").is_file()


@pytest.mark.timeout(2400)
def test_the_readme_cluster_commands_on_a_real_cluster(node, tmp_path):
    # the head's start commands begin with `ray stop`, which would stop any other Ray on this machine too
    assert not ray_processes(), f"another Ray runs on this machine; `ray up` here would stop it: {ray_processes()}"
    others = mlflow_server_groups()  # not the cluster's (the session's basic-auth server for other tests)

    def head_servers() -> set[int]:
        return mlflow_server_groups() - others
    shared = tmp_path / "shared"
    shared.mkdir()
    client_tmp = Path(tempfile.mkdtemp(prefix="rxc", dir="/tmp"))  # short: ssh's control sockets live under it
    CLIENT_ENV["RAY_TMPDIR"] = str(client_tmp)
    cluster = cluster_file(node, shared, tmp_path)
    storage = f"CLUSTER_STORAGE={shared / 'results'}"
    before = set(listeners())
    try:
        make("cluster-up", cluster)
        token = Path("~/.ray/auth_token").expanduser().read_text().strip()
        assert len(head_servers()) == 1

        # every port the cluster opened beyond loopback demands the token, but Ray's read-only Prometheus exporters
        # (the README's security text names them). Ray turns a head_ip of 127.0.0.1 into this machine's address,
        # so its services bind a real interface here, as on a cluster.
        opened = {where: who for where, who in listeners().items() if where not in before}
        assert any(port == 6379 for _, port in opened), opened  # the GCS, at least, is the cluster's
        beyond = {f"{address}:{port} {who}": exposure(address, port, token) for (address, port), who in opened.items()
                  if address not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")}
        assert beyond and all(what in ("nothing", "metrics") for what in beyond.values()), beyond

        # a local ray_xt run on the head's machine starts its own Ray, never joins the cluster's by accident
        local = subprocess.run([str(VENV / "bin" / "python"), "-c",
                                "from ray_xt.local_ray import start_ray; start_ray(num_cpus=1); import ray; "
                                "print('GCS', ray.get_runtime_context().gcs_address); ray.shutdown()"],
                               capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": ""})
        assert local.returncode == 0 and "GCS " in local.stdout, local.stderr[-3000:]
        assert not local.stdout.split("GCS ")[1].strip().endswith(":6379"), local.stdout

        # 1. the study as a Ray job on the head, submitted by `make cluster-submit` (ray submit of cluster_entry.py
        # from the SSH user's home), whose client dies mid-study: the study goes on
        login = mlflow_login()
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = login
        slow = "RUN_OPTIONS=--set trial.epochs=3"  # long enough for the refusals below to meet it running
        client_log = tmp_path / "submit.log"
        with open(client_log, "w") as out:
            submitting = subprocess.Popen(["make", "cluster-submit", f"CLUSTER={cluster}", f"EXP={STUDY}", storage, slow],
                                          cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                          env={**os.environ, **CLIENT_ENV})
        try:
            wait_for_text(client_log, "[ray-xt] stage 1/3", submitting)
        finally:
            kill_group(submitting)
        job = re.search(r"submitted as Ray job (\S+):", client_log.read_text()).group(1)
        # while it runs: a second driver of the same study, and a cluster-up that would restart Ray, are refused
        again = subprocess.run(["make", "cluster-submit", f"CLUSTER={cluster}", f"EXP={STUDY}", storage, slow], cwd=ROOT,
                               capture_output=True, text=True, timeout=600, env={**os.environ, **CLIENT_ENV})
        assert again.returncode != 0 and f"already runs on this cluster as job {job}" in again.stdout + again.stderr, \
            again.stdout[-3000:] + again.stderr[-3000:]
        up = subprocess.run(["make", "cluster-up", f"CLUSTER={cluster}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, **CLIENT_ENV})
        assert up.returncode != 0 and f"study cluster_smoke runs on this cluster as job {job}" in up.stderr, \
            up.stdout[-3000:] + up.stderr[-3000:]
        assert "Cluster Ray runtime will be restarted" not in up.stdout + up.stderr
        status = make("cluster-status", cluster)
        assert f"{job}  study cluster_smoke  RUNNING" in status, status[-3000:]
        # re-attaching shows the live progress and follows the study to its end
        logs = make("cluster-logs", cluster)
        assert "[ray-xt] progress: 3/3 stages done" in logs and f"job {job}: SUCCEEDED" in logs, logs[-4000:]
        assert "[ray-xt] MLflow runs table: http://127.0.0.1:5000/#/experiments/" in logs + client_log.read_text()
        finished_study(shared / "results")
        first = trial_runs("ray_xt/cluster_smoke")
        assert len(first) == 6, logs[-3000:]  # 2 trials in each of the 3 sweeps
        assert f"{job}  study cluster_smoke  SUCCEEDED" in make("cluster-status", cluster)
        # the head's MLflow: basic auth, its runs on the shared storage
        assert (shared / "mlflow" / "mlflow.db").is_file() and (shared / "mlflow" / "auth.db").is_file()
        request = urllib.request.Request("http://127.0.0.1:5000/api/2.0/mlflow/experiments/search?max_results=1")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        # 2. ray job submit over the dashboard's tunnel with the cluster's token, into storage of its own
        # its own process group: `ray dashboard` runs ssh as a child, which outlived a plain terminate()
        tunnel = subprocess.Popen([str(VENV / "bin" / "ray"), "dashboard", str(cluster), "--port", str(DASHBOARD_TUNNEL)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, **CLIENT_ENV}, start_new_session=True)
        try:
            wait_for_port(DASHBOARD_TUNNEL, tunnel)
            job_storage = shared / "results-jobs-check"  # the README's
            submit = subprocess.run(
                [str(VENV / "bin" / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{DASHBOARD_TUNNEL}",
                 "--working-dir", ".", "--", "ray-xt", "run", STUDY, "--address", "auto",
                 "--tracking-uri", "http://127.0.0.1:5000", "--storage", str(job_storage)],
                cwd=ROOT, capture_output=True, text=True, timeout=900,
                env={**os.environ, **CLIENT_ENV, "RAY_AUTH_MODE": "token"})
        finally:
            os.killpg(tunnel.pid, signal.SIGTERM)
            tunnel.wait(30)
        assert submit.returncode == 0, submit.stdout[-6000:] + submit.stderr[-3000:]
        finished_study(job_storage)
        assert len(trial_runs("ray_xt/cluster_smoke")) == len(first) + 6
        # the README's MLflow tunnel (to another local port: the head's own 5000 is on this machine)
        mlflow_tunnel = subprocess.Popen(
            ["ssh", "-i", str(node.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ExitOnForwardFailure=yes", "-N", "-L", f"{MLFLOW_TUNNEL}:127.0.0.1:5000", f"{node.user}@127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(MLFLOW_TUNNEL, mlflow_tunnel)
            with urllib.request.urlopen(f"http://127.0.0.1:{MLFLOW_TUNNEL}/health", timeout=10) as health:
                assert health.status == 200
        finally:
            mlflow_tunnel.terminate()
            mlflow_tunnel.wait(30)
        # 3. the report rebuilt on the head
        out = make("cluster-report", cluster, f"EXP={STUDY}", f"CLUSTER_STORAGE={job_storage}")  # the README's check
        assert "MLflow run" in out and "http://127.0.0.1:5000" in out, out[-5000:]
        # 4. bringing the cluster up again (no study running) duplicates nothing
        make("cluster-up", cluster)
        assert node.run("grep -cxF '. ~/.ray_xt_env' ~/.bashrc").stdout.strip() == "1"
        assert len(head_servers()) == 1
    finally:
        down = subprocess.run(["make", "cluster-down", f"CLUSTER={cluster}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**os.environ, **CLIENT_ENV})
        deadline = time.monotonic() + 30
        while (ray_processes() or head_servers()) and time.monotonic() < deadline:
            time.sleep(1)
        left = ray_processes(), head_servers()
        # whatever cluster-down left must not become the Ray instance the next tests attach to
        subprocess.run([str(VENV / "bin" / "ray"), "stop", "--force"], capture_output=True, timeout=120)
        for group in left[1]:
            subprocess.run(["kill", "-KILL", "--", f"-{group}"], capture_output=True)
    shutil.rmtree(client_tmp, ignore_errors=True)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert not left[0] and not left[1], f"left running after make cluster-down: {left}\n{down.stdout[-4000:]}"
