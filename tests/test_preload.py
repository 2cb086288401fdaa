"""Trainer hosts import what a trial needs when they start (ray_xt.preload): every named module exists in the
pinned stack."""

import subprocess
import sys


def test_every_preloaded_module_imports_with_the_installed_versions():
    # A module renamed by a transformers/DeepSpeed upgrade would silently stop being preloaded (preload is
    # best effort at run time); this test is where that shows.
    code = ("import sys, ray_xt.preload as p\n"
            "print(p.MISSING)\n"
            "print(all(m in sys.modules for m in p.MODULES))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"]


def test_a_module_that_cannot_be_imported_is_reported_not_raised(monkeypatch):
    import ray_xt.preload as preload

    monkeypatch.setattr(preload, "MODULES", ("json", "ray_xt_no_such_module"))
    assert preload.preload() == ["ray_xt_no_such_module"]


def _extension_build_dir(env: dict) -> str:
    """Where torch would JIT-build DeepSpeed's shm op in a process that prepared itself as a trial does."""
    code = ("import ray_xt.process_env as t\n"
            "t.choose_deepspeed_accelerator()\n"
            "from torch.utils.cpp_extension import _get_build_directory\n"
            "print(_get_build_directory('deepspeed_shm_comm', False))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_deepspeed_ops_are_built_inside_this_environment_not_the_user_wide_cache(tmp_path):
    # Two checkouts sharing ~/.cache/torch_extensions rebuild each other's op (~60 s, in the first trials).
    import os

    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    assert _extension_build_dir(env).startswith(os.path.join(sys.prefix, "torch_extensions"))
    own = str(tmp_path / "mine")
    assert _extension_build_dir({**env, "TORCH_EXTENSIONS_DIR": own}).startswith(own)


def test_an_idle_task_worker_outlives_a_busy_spell_of_the_nodes_cpus(ray_local):
    """While trials hold every CPU, Ray's default kills a task worker idle for 1 s, so each stage driver and
    zero-shot evaluation used to start a process that imported Tune or torch again. ray_xt's Ray keeps idle
    workers for a minute: a worker that ran a task is still there after a few busy seconds, for the next one."""
    import os
    import time

    @ray_local.remote(num_cpus=1)
    def worker_pid():
        return os.getpid()

    @ray_local.remote(num_cpus=1)
    class Trial:  # holds a CPU, as a running trial does
        def ready(self):
            return True

    pid = ray_local.get(worker_pid.remote())
    trials = [Trial.remote() for _ in range(2)]
    ray_local.get([t.ready.remote() for t in trials])
    time.sleep(4)  # every CPU busy, well past Ray's default 1 s idle threshold and its 0.2 s culling interval
    try:
        os.kill(pid, 0)  # raises if the idle worker's process is gone
    finally:
        for t in trials:
            ray_local.kill(t)
