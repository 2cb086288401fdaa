"""Ray's non-public modules only in ray_xt/ray_internals.py, version-checked, and a study that runs without them."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_study

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = ("ray._private", "ray.core.generated", "ray.tune.execution", "ray.train._internal", "ray.air._internal")


def test_no_module_but_the_adapter_imports_rays_internals():
    offenders = []
    for path in (ROOT / "ray_xt").rglob("*.py"):
        if path.name == "ray_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.startswith(PRIVATE)]
    assert offenders == []


def test_an_untested_ray_version_turns_fast_start_off(monkeypatch, capsys):
    import ray

    from ray_xt import ray_internals

    monkeypatch.setenv(ray_internals.FAST_START_ENV, "1")
    monkeypatch.setattr(ray, "__version__", "2.99.0")
    monkeypatch.setattr(ray_internals, "_told", False)
    ray_internals._load.cache_clear()
    try:
        assert ray_internals.raylet_api() is None
        assert "Ray 2.99 is outside the versions its private calls were tested with" in capsys.readouterr().out
    finally:
        ray_internals._load.cache_clear()
    monkeypatch.setattr(ray, "__version__", "2.60.0")
    assert ray_internals.raylet_api() is not None  # the installed, tested version


def test_on_a_cluster_the_job_gets_no_setup_hook_and_no_fast_start():
    from ray_xt.local_ray import fast_start_wanted, job_runtime_env
    from ray_xt.ray_internals import FAST_START_ENV

    cluster = job_runtime_env(fast_start_wanted(local=False))
    assert "worker_process_setup_hook" not in cluster and cluster["env_vars"][FAST_START_ENV] == "0"
    assert job_runtime_env(True)["env_vars"][FAST_START_ENV] == "1"


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_study_runs_when_rays_internals_cannot_be_imported(tmp_path):
    """As after a Ray release that moved them: in every process (driver and Ray workers, through sitecustomize)
    ray_xt's adapter fails to import the raylet stubs, while Ray's own processes (its dashboard agent imports
    them too) keep theirs; the study still runs, on plain Ray and Tune, and says why once."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import builtins\n"
        "_real_import = builtins.__import__\n"
        "def _import(name, globals=None, locals=None, fromlist=(), level=0):\n"
        "    if (globals or {}).get('__name__') == 'ray_xt.ray_internals' and name == 'ray.core.generated':\n"
        "        raise ModuleNotFoundError(f\"No module named '{name}.{(fromlist or ('',))[-1]}'\")\n"
        "    return _real_import(name, globals, locals, fromlist, level)\n"
        "builtins.__import__ = _import\n")
    study = tiny_study(tmp_path, tmp_path / "cache", search={"num_samples": 1, "max_concurrent": 1},
                       trial={"epochs": 1})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([str(ROOT / ".venv/bin/ray-xt"), "run", str(path)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=560)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "1 stages in" in out.stdout or "stage 1/1" in out.stdout
    said = out.stdout + out.stderr
    assert "fast start off: Ray's internals moved" in said and "node_manager_pb2_grpc" in said
    assert sys.modules.get("ray.core.generated.node_manager_pb2_grpc", "untouched") is not None  # only the child
