"""A trial as Ray runs it: the Tune trainable and its two shapes, chosen by ``TrialSpec.workers``.

- one process with ``cpus``/``gpus``, reporting with ``tune.report``: on CPUs a warm trainer host of the study
  (``ray_xt.trainer_hosts``), driven by the Tune trial, which holds the CPUs and forwards the reports; on GPUs
  (or with ``warm_trainers: false``) the Tune trial actor itself;
- ``workers`` > 1: the Tune trial is only a driver that runs a Ray Train ``TorchTrainer`` of that many
  data-parallel workers, each one rank of the same DeepSpeed engine (ZeRO-2/3). Under Train V2 the workers
  report with ``ray.train.report``; Train persists the (merged) checkpoint in the trial's own storage folder
  and ``TuneReportCallback`` forwards rank 0's metrics, with the checkpoint's path as ``checkpoint_path``, to
  Tune (ASHA, OptunaSearch and the MLflow callback see them as usual).

The loop itself (``ray_xt.loop.train``) knows nothing of Ray; this module depends on it, never the reverse.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

# TaskInputs and TrialSpec are named here too: Tune experiments pickled before the loop moved to ray_xt.loop resume
from ray_xt.loop import Hyper, PhaseClock, TaskInputs, TrialSpec, train  # noqa: F401
from ray_xt.process_env import prepare_process
from ray_xt.sessions import TrainWorkerSession, TuneSession, divergence_marker, stop_if_diverged


def quiet_termination() -> None:
    """Ray ends a trial actor Tune no longer needs with SIGTERM, which Ray's handler turns into SystemExit. Landing in
    a finaliser or weakref callback, that SystemExit cannot end anything: Python prints "Exception ignored ...
    SystemExit: 1" with a traceback (a user reads a failure) and the process lives on until Ray kills it. In this
    process such an exit is silent and the signal is sent again, so it ends in ordinary code as Ray meant
    (its exit handlers run). Every other exception Python cannot raise prints as before."""
    from ray_xt.ray_internals import is_ray_sigterm_exit

    previous = sys.unraisablehook
    if getattr(previous, "ray_xt_quiet_termination", False):
        return

    def hook(unraisable) -> None:
        if is_ray_sigterm_exit(unraisable.exc_value):
            # from another thread, a moment later: sent from here, Ray's handler would raise inside this hook
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return
        previous(unraisable)

    hook.ray_xt_quiet_termination = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def run_trial(config: dict, spec: TrialSpec) -> None:
    """Tune function trainable. ``config`` carries the searched values (``ray_xt.loop.Hyper``)."""
    from ray_xt.trial_workers import replace_this_worker
    from ray_xt.tune_console import quiet_tune_console

    clock = PhaseClock()
    quiet_tune_console()  # this trial actor's checkpoint INFO lines
    quiet_termination()  # and the traceback of its end
    marker = divergence_marker()
    stop_if_diverged(marker)
    if spec.trainer_pool is not None:  # the study set it only for CPU trials (study.hosted)
        from ray_xt.trainer_hosts import run_on_host

        # it asks for this actor's replacement once its host runs: a new host's imports come first
        if run_on_host(config, spec, marker, clock.entry_time):
            return
    # a warm process on this node for the trial actor after this one (the next sweep's)
    replace_this_worker()
    if spec.workers > 1:
        run_worker_group(config, spec, marker)
        return
    prepare_process(spec.cpus)
    train(spec, Hyper.of(config), TuneSession(marker), clock)


def run_worker_group(config: dict, spec: TrialSpec, marker: Path | None) -> None:
    """Drive one trial as a Ray Train TorchTrainer of ``spec.workers`` DeepSpeed ranks (Train V2).

    The run lives in the Tune trial's own storage folder under ``train/``: when Tune retries the trial, the
    new TorchTrainer finds the run's snapshot there and every worker resumes from its last checkpoint.
    """
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    use_gpu = spec.gpus_per_worker > 0
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"config": config, "spec": spec, "marker": str(marker) if marker else None},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.workers, use_gpu=use_gpu,
            resources_per_worker={"CPU": spec.cpus, **({"GPU": spec.gpus_per_worker} if use_gpu else {})},
            placement_strategy=spec.placement,  # STRICT_PACK by default: an XL trial's ranks on one node
        ),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=tune.get_context().get_storage().trial_fs_path,
            failure_config=ray.train.FailureConfig(max_failures=spec.worker_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                # the best-scored checkpoint, and the latest (Train keeps it too): a restarted group resumes there
                num_to_keep=1, checkpoint_score_attribute="score", checkpoint_score_order="max"),
            # ray.train.RunConfig is Train V2's here (RAY_TRAIN_V2_ENABLED); its annotation is V1's Tune callbacks
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]
        ),
    )
    trainer.fit()


def train_worker(loop_config: dict) -> None:
    """One Ray Train worker: a rank of the trial's DeepSpeed engine (the process group is Train's)."""
    clock = PhaseClock()
    spec: TrialSpec = loop_config["spec"]
    marker = Path(loop_config["marker"]) if loop_config["marker"] else None
    stop_if_diverged(marker)  # a worker-group restart after divergence
    prepare_process(spec.cpus)
    train(spec, Hyper.of(loop_config["config"]), TrainWorkerSession(marker), clock)


def stage_trainable(stage_key: str):
    """``run_trial`` under a name unique to the stage.

    Tune keys a trainable, and the parameters ``tune.with_parameters`` stores for it, by the function's name
    and ``str(function)`` inside the job: two stages sweeping at the same time with the same ``run_trial``
    would read each other's TrialSpec. A per-stage name keeps them apart.
    """
    def trainable(config: dict, spec: TrialSpec) -> None:
        run_trial(config, spec)

    trainable.__name__ = trainable.__qualname__ = f"run_trial_{stage_key}"
    return trainable
