"""The Ray instance ray_xt starts on this machine, and the settings it gives every Ray it starts or joins.

One place for them: ``ray-xt``, ``ray-xt micro build``, the tests and the benchmarks all start Ray through
``start_ray``; the cluster YAMLs set the same system settings on ``ray start`` (checked in tests/test_clusters.py).
"""

from __future__ import annotations

import os

# Quiet, offline-friendly defaults for every process Ray starts (trials inherit them).
WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "PYTHONWARNINGS": "ignore",
}


# No preload_python_modules: Ray starts a new worker process for every Tune trial actor in every sweep, and those
# only drive warm trainer hosts (ray_xt.trainer_hosts), which import torch, transformers and DeepSpeed once per
# study themselves. Preloading them into every worker cost every trial actor ~6 s per sweep (docs/benchmarks.md,
# "Orchestration overhead").
# Ray kills a task worker idle for 1 s whenever the node's idle workers outnumber its free CPUs, and while trials
# hold every CPU that is any idle worker: every stage driver and zero-shot evaluation (Ray tasks) then started a
# new process that imported Tune or torch again (a one-seed demo's stages took 1.37x as long; docs/benchmarks.md,
# "Demo study"). Idle task workers now live a minute, long enough for the next stage to reuse them.
IDLE_WORKER_SECONDS = 60


def ray_system_config() -> dict:
    """Ray system settings for an instance ray_xt starts (``ray.init``); cluster YAMLs set them on ``ray start``."""
    return {"idle_worker_killing_time_threshold_ms": IDLE_WORKER_SECONDS * 1000}


def job_runtime_env(fast_start: bool = True) -> dict:
    """The runtime environment of every Ray job ray_xt starts: the quiet defaults above and whether the fast-start
    layer is on (``ray_xt.ray_internals``); with it, the setup hook that has workers started for Tune's trial
    actors import Tune before one is asked for (``ray_xt.trial_workers``)."""
    from ray_xt.ray_internals import FAST_START_ENV
    from ray_xt.trial_workers import SETUP_HOOK

    env = {"env_vars": {**WORKER_ENV, FAST_START_ENV: "1" if fast_start else "0"}}
    return {**env, "worker_process_setup_hook": SETUP_HOOK} if fast_start else env


def local_ray_options(**extra) -> dict:
    """``ray.init`` options for a Ray instance ray_xt starts itself (tests and benchmarks use them too)."""
    return {"include_dashboard": False, "runtime_env": job_runtime_env(fast_start_wanted()),
            "_system_config": ray_system_config(), **extra}


def fast_start_wanted(local: bool = True) -> bool:
    """The fast-start layer: on for a Ray instance started here, unless RAY_XT_FAST_START=0; off on clusters."""
    from ray_xt.ray_internals import FAST_START_ENV

    return local and os.environ.get(FAST_START_ENV, "1") != "0"


def start_ray(address: str | None = None, **extra) -> None:
    """Start a local Ray instance with ray_xt's settings, or join the cluster at ``address`` (which keeps its own
    system config); a no-op when this process is already connected. ``extra`` goes to ``ray.init``.

    Without an address (and without Ray's own RAY_ADDRESS) the instance is always a new one: ``ray.init()`` alone
    would join whatever `ray start` left running on this machine (a cluster head, another user's instance)."""
    import ray

    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    from ray_xt.ray_internals import FAST_START_ENV

    # set before the options are made: they, and this driver's own prestart calls, follow the same switch
    os.environ[FAST_START_ENV] = "1" if fast_start_wanted(local=address is None) else "0"
    options = local_ray_options(**extra)
    if address is not None:
        options.pop("_system_config")  # a running cluster keeps its own system config
    ray.init(address=address if address is not None else "local", **options)
