import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance for the whole session (2 CPUs, like the target machine)."""
    import ray

    from ray_xt.local_ray import start_ray

    start_ray(num_cpus=2, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_never_started(monkeypatch):
    """Fails the test if it starts or connects to Ray. It records calls to the real ``ray.init`` (and lets them
    through), so it holds whether or not a session Ray from another test file is already up in this process."""
    import ray

    calls = []
    real_init = ray.init

    def recording_init(*args, **kwargs):
        calls.append(kwargs.get("address", args[0] if args else None))
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", recording_init)
    was_up = ray.is_initialized()
    yield calls
    assert calls == [], f"ray.init was called (address {calls})"
    assert ray.is_initialized() == was_up


def tune_env_workers(idle_only: bool = False, created_after: float = 0.0) -> set[int]:
    """This machine's Ray worker processes started in a Tune trial actor's runtime environment (ray_xt.trial_workers);
    ``idle_only``: those still waiting for an actor (titled ``ray::IDLE``)."""
    import psutil

    from ray_xt.trial_workers import TUNE_ACTOR_MARK

    name, value = TUNE_ACTOR_MARK
    pids = set()
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])  # a worker retitles itself ray::IDLE once it is up
            is_worker = "default_worker.py" in cmdline or cmdline.startswith("ray::")
            if (is_worker and (not idle_only or cmdline.startswith("ray::IDLE"))
                    and proc.info["create_time"] > created_after and proc.environ().get(name) == value):
                pids.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return pids


@pytest.fixture(scope="session")
def micro_cache(tmp_path_factory):
    """Micro worlds built by tests are cached for the session only."""
    return tmp_path_factory.mktemp("micro_cache")


def tiny_study(tmp_path: Path, cache: Path, **overrides) -> dict:
    """A study small enough for a test: one micro scale, a small world, short pretraining."""
    study = {
        "name": "tiny",
        "data": {"source": "micro"},
        "micro": {
            "seed": 3, "languages": ["en", "qca", "qso"], "corpus_sentences": 600, "train_size": 160,
            "dev_size": 40, "test_size": 40, "vocab_size": 600, "pretrain_steps": 30, "cache_dir": str(cache),
        },
        "scales": ["micro-s"],
        "intermediate": {"tasks": [], "conditions": ["en"]},
        "target": {"tasks": ["pawsx"]},
        "seeds": [0],
        "trial": {"epochs": 2, "batch_size": 32, "max_seq_length": 48, "evals_per_epoch": 1, "zero_stage": 2, "cpus": 1},
        "search": {"learning_rate": {"low": 1e-4, "high": 1e-3}, "num_samples": 2, "max_concurrent": 2},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}"},
        "storage": str(tmp_path / "results"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(study.get(key), dict):
            study[key] = {**study[key], **value}
        else:
            study[key] = value
    return study


AUTH_USER, AUTH_PASSWORD = "admin", "pw-ray-xt-test-7319"


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory):
    """A real MLflow server with basic auth (`mlflow server --app-name basic-auth`, as a team would run on a head):
    yields its URL without credentials; AUTH_USER/AUTH_PASSWORD is its admin login."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    folder = tmp_path_factory.mktemp("mlflow_auth")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "basic_auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///" + str(folder / "auth.db") +
        f"\nadmin_username = {AUTH_USER}\nadmin_password = {AUTH_PASSWORD}\nauthorization_function = "
        "mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "ray-xt-test"}
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'm.db'}", "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.time() < deadline, "the MLflow auth server did not come up"
            time.sleep(1)
    yield url
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()
