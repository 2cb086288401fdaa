"""A stage -> one Ray Tune sweep: OptunaSearch (TPE) behind a ConcurrencyLimiter, ASHA, retries."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ray_xt.loop.contract import Hyper
from ray_xt.storage import exists, join
from ray_xt.tune_console import quiet_tune_console


@dataclass(frozen=True)
class SweepSettings:
    learning_rate_low: float  # search.learning_rate, searched log-uniformly
    learning_rate_high: float
    initial_learning_rate: float | None  # the first point evaluated
    num_samples: int
    max_concurrent: int
    search_seed: int
    asha: bool
    grace_period: int
    reduction_factor: float
    max_reports: int  # evaluations a full trial makes (ASHA's max_t)
    max_failures: int
    cpus: float  # per trial, or per worker when workers > 1
    gpus: float
    workers: int = 1  # > 1: each trial drives a Ray Train worker group (ray_xt.trial.run_worker_group)
    first_learning_rates: tuple[float, ...] = ()  # a warm start's: evaluated first (instead of the initial point)
    observations: tuple[tuple[float, float], ...] = ()  # a warm start's (learning rate, score): told to Optuna
    metric: str = "score"
    mode: str = "max"


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    learning_rate: float
    score: float | None
    status: str
    examples_per_second: float | None = None  # training throughput the trial measured
    seconds: float | None = None  # the trial's wall time as Tune measured it (time_total_s)


@dataclass(frozen=True)
class SweepOutcome:
    best_trial_id: str
    best_learning_rate: float
    best_score: float
    best_model_dir: str  # the best checkpoint's model/ folder (save_pretrained form)
    trials: tuple[TrialOutcome, ...]
    resumed: bool = False  # restored from the experiment folder an interrupted run left
    trials_without_results: int = 0  # trials an interruption caught before their first result: restarted


DRIVER_MEMORY_BYTES = 512 * 1024**2  # a worker-group trial's driver: the Tune function and Train's controller


class SweepFailed(RuntimeError):
    pass


def build_searcher(s: SweepSettings):
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    firsts = s.first_learning_rates or ((s.initial_learning_rate,) if s.initial_learning_rate is not None else ())
    points = [Hyper(lr).as_config() for lr in firsts[: s.num_samples]] or None
    # The space lives in the searcher (not the Tuner's param_space) so it is part of the searcher state a
    # restored sweep gets back: a sweep interrupted before its first trial can still sample after restore.
    space: dict[str, optuna.distributions.BaseDistribution] = {  # Hyper's one field
        "learning_rate": optuna.distributions.FloatDistribution(s.learning_rate_low, s.learning_rate_high, log=True)}
    searcher = OptunaSearch(
        space=space, metric=s.metric, mode=s.mode, points_to_evaluate=points,
        sampler=optuna.samplers.TPESampler(seed=s.search_seed, n_startup_trials=max(2, min(10, s.num_samples // 2))),
    )
    for learning_rate, score in s.observations:  # trials of related stages: TPE models from them at once
        searcher.add_evaluated_point(Hyper(learning_rate).as_config(), score)
    return ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)


def build_scheduler(s: SweepSettings):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if not s.asha or s.max_reports <= s.grace_period:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration", max_t=s.max_reports, grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )


def result_loggers() -> list:
    """Tune's CSV and JSON result files (what ``ResultGrid`` and bench/ read), without its default TensorBoard
    logger: MLflow is where results are reviewed, and importing tensorboardX cost each new stage driver ~2 s
    before its first trial (profiled; docs/benchmarks.md)."""

    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # read when the Tuner builds its callbacks
    return [CSVLoggerCallback(), JsonLoggerCallback()]


def run_sweep(name: str, storage_path: str, trainable, settings: SweepSettings, callbacks: list,
              locate: Callable[[str], str] = str) -> SweepOutcome:
    """Run (or resume, if this stage's experiment folder exists) the sweep and pick its best checkpoint.

    ``storage_path``: a folder or a URI Ray Tune accepts; ``locate`` turns a checkpoint path Tune reports (inside
    that storage's filesystem) into one other processes can read (``StudyStorage.checkpoint_location``)."""
    from ray import tune

    from ray_xt.retention import OptimizerStateRetention

    quiet_tune_console(driver=True)

    if settings.workers > 1:
        # The trial is only the Train driver: its workers hold the CPUs/GPUs. A driver holding a CPU of its
        # own would keep a worker group that fills a node from ever starting (the ConcurrencyLimiter bounds
        # how many drivers wait). Tune refuses an empty request, so the driver reserves the memory it uses.
        resources: dict[str, float] = {"cpu": 0, "gpu": 0, "memory": DRIVER_MEMORY_BYTES}
    else:
        resources = {"cpu": settings.cpus, "gpu": settings.gpus}
    trainable = tune.with_resources(trainable, resources)
    loggers = result_loggers()  # a restored sweep brings its own (pickled) callbacks, these among them
    experiment_dir = join(str(storage_path), name)
    resumed = tune.Tuner.can_restore(str(experiment_dir))
    if resumed:
        # a driver died mid-sweep: finished trials stay finished, unfinished/errored ones resume from checkpoints
        tuner = tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=settings.metric, mode=settings.mode, num_samples=settings.num_samples,
                search_alg=build_searcher(settings), scheduler=build_scheduler(settings),
                # a Train driver must end with its trial: its worker group is owned by (and dies with) it
                reuse_actors=settings.workers == 1,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage_path),
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                checkpoint_config=tune.CheckpointConfig(
                    # the best-scored checkpoint; Tune keeps the latest too (what a retry resumes from)
                    num_to_keep=1, checkpoint_score_attribute=settings.metric, checkpoint_score_order=settings.mode
                ),
                callbacks=[*callbacks, OptimizerStateRetention(locate), *loggers],
                verbose=0,
            ),
        )
    grid = tuner.fit()
    return replace(summarize(grid, settings, locate), resumed=resumed)


def summarize(grid, settings: SweepSettings, locate: Callable[[str], str] = str) -> SweepOutcome:
    trials = []
    candidates = []  # (score, trial_id, lr, checkpoint)
    for result in grid:
        # Tune's own result metadata; a trial that failed before its first report has none: its folder names it
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        lr = Hyper.of(result.config).learning_rate if result.config else float("nan")
        scored = [(score, locate(path)) for score, path in _scored_checkpoints(result, settings.metric, locate)]
        trials.append(TrialOutcome(trial_id, lr, max((s for s, _ in scored), default=None),
                                   "ERROR" if result.error else "TERMINATED",
                                   (result.metrics or {}).get("examples_per_second"),
                                   (result.metrics or {}).get("time_total_s")))
        candidates += [(score, trial_id, lr, ckpt) for score, ckpt in scored]
    if not candidates:
        errors = [str(r.error).splitlines()[0] for r in grid if r.error]
        raise SweepFailed(f"no trial produced a finite {settings.metric}; errors: {errors[:3]}")
    # ties broken by trial id and checkpoint path, so a restored sweep picks the same checkpoint
    score, trial_id, lr, ckpt = min(candidates, key=lambda c: (-c[0], c[1], c[3]))
    trials.sort(key=lambda t: t.trial_id)
    without = sum(1 for result in grid if not result.metrics)
    return SweepOutcome(trial_id, lr, score, join(ckpt, "model"), tuple(trials), trials_without_results=without)


def _scored_checkpoints(result, metric: str, locate: Callable[[str], str] = str) -> list[tuple[float, str]]:
    """(score, checkpoint folder) of a trial's kept checkpoints.

    One-process trials report Tune checkpoints. Worker-group trials report through Ray Train, which keeps the
    checkpoints in the trial's ``train/`` run and tells Tune their paths as the ``checkpoint_path`` metric;
    the ones Train has since deleted (``num_to_keep``) are skipped.
    """
    def finite(value) -> bool:
        return value is not None and isinstance(value, (int, float)) and math.isfinite(value)

    scored = [(m[metric], ckpt.path) for ckpt, m in (result.best_checkpoints or []) if finite(m.get(metric))]
    if scored:
        return scored
    frame = result.metrics_dataframe
    if frame is None or "checkpoint_path" not in frame or metric not in frame:
        return []
    return [(float(row[metric]), str(row["checkpoint_path"])) for _, row in frame.iterrows()
            if finite(row[metric]) and isinstance(row["checkpoint_path"], str)
            and exists(join(locate(row["checkpoint_path"]), "model"))]
