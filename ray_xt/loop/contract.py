"""What a trial rank is given and what it reports to: the TrialSpec of plain values, the Session protocol (and
the one-process sessions of tests and benchmarks), the phase clock, and the divergence error."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ray_xt.config import ResolvedTrial


@dataclass(frozen=True)
class Hyper:
    """The values a sweep searches, under the names the study file gives them (``search.learning_rate``): the sweep
    builds its search space and first point from these fields (``ray_xt.sweep``), Tune's config dict carries them
    (``as_config``), and the trial reads them back (``of``)."""

    learning_rate: float

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Hyper:
        return cls(**{f.name: float(config[f.name]) for f in fields(cls)})

    def as_config(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TaskInputs:
    """One task a trial trains on: its cached features and label space."""

    task: str
    labels: tuple[str, ...]  # classification labels / tag set (empty for multiple choice and QA)
    train_features: str
    dev_features: str


# TrialSpec fields that are trial settings (ray_xt.config.TrialConfig, resolved per scale), under the same names
FROM_SETTINGS = ("epochs", "batch_size", "evals_per_epoch", "warmup_ratio", "weight_decay", "zero_stage", "bf16",
                 "cpus", "workers", "placement", "freeze_embeddings", "group_by_length", "grad_accum",
                 "offload_optimizer")


@dataclass(frozen=True)
class TrialSpec:
    """Plain values a trial needs; built by the sweep, shipped to the trial process."""

    model_path: str
    tokenizer_path: str
    tasks: tuple[TaskInputs, ...]  # one task, or several for multi-task training (one shared encoder)
    epochs: float
    batch_size: int
    evals_per_epoch: int
    warmup_ratio: float
    weight_decay: float
    zero_stage: int
    bf16: str | bool
    cpus: float
    seed: int
    stage_key: str
    git_revision: str
    resolved_config: dict = field(default_factory=dict)
    # > 1: data-parallel Ray Train workers (each `cpus` CPUs and `gpus_per_worker` GPUs), one DeepSpeed rank each;
    # `batch_size` stays the global batch, split evenly across the workers.
    workers: int = 1
    gpus_per_worker: float = 0
    worker_failures: int = 1  # Ray Train restarts of the worker group (from its last checkpoint) within a trial
    placement: str = "STRICT_PACK"  # the worker group's Ray placement strategy
    freeze_embeddings: bool = False  # the encoder's embedding layer is not trained
    group_by_length: bool = False  # length-grouped batches (TaskSchedule): less padding, same batches per epoch
    grad_accum: int = 1  # micro-batches per optimiser step; batch_size stays the effective batch
    offload_optimizer: bool = False  # fp32 master weights and Adam's moments in host memory (ZeRO-Offload)
    # the mlm condition: MLM batches of its text per task batch, taken on top of the task's steps (which stay those
    # of the task alone, as in its `en` twin); 0 without an MLM companion
    mlm_ratio: float = 0.0
    # the study's TrainerPool (ray_xt.trainer_hosts): a one-process CPU trial trains in a warm host process
    # leased from it and only drives it; None: the trial trains in its own (Tune actor) process
    trainer_pool: str | None = None

    @classmethod
    def of(cls, settings: ResolvedTrial, **run: Any) -> TrialSpec:
        """A spec from a study's resolved trial settings (``StudyConfig.resolved_trial``: every field the loop reads,
        by the same name; ``gpus`` is per worker) and the run's own values (paths, tasks, seed, keys)."""
        return cls(**{name: getattr(settings, name) for name in FROM_SETTINGS}, gpus_per_worker=settings.gpus, **run)

    @classmethod
    def from_record(cls, fields: dict) -> TrialSpec:
        """The spec a stage record stores as ``asdict(spec)`` (JSON lists where the spec has tuples)."""
        tasks = tuple(TaskInputs(**{**t, "labels": tuple(t["labels"])}) for t in fields["tasks"])
        return cls(**{**fields, "tasks": tasks})


class Resumable(Protocol):
    """A checkpoint to resume from (Ray's ``Checkpoint`` is one)."""

    def as_directory(self) -> AbstractContextManager[str]: ...


class Session(Protocol):
    """Where one rank's loop sends its reports and checkpoints, and what it learns back."""

    rank: int
    world_size: int
    marker: Path | None  # a divergence marker to write (rank 0) when the loss stops being finite; None: none

    def checkpoint(self) -> Resumable | None:
        """The checkpoint a retried trial resumes from; None for a fresh start."""

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        """Metrics and the checkpoint folder of one evaluation; ``final``: the trial's last report."""

    def all_finite(self, loss) -> bool:
        """The loss is finite on every rank (a collective in a worker group)."""

    def stop_requested(self) -> bool:
        """Stop before the next step (a cancelled run)."""


class PhaseClock:
    """Wall time of a trial's setup phases, from entering the trial function to its first optimiser step.

    Reported with every evaluation as ``setup.<phase>`` seconds (and the entry time as ``trial_entry_time``),
    so ``bench/trial_fixed_cost.py`` can break the per-trial fixed cost down without extra instrumentation.
    """

    def __init__(self, entry_time: float | None = None, phases: dict[str, float] | None = None):
        self.entry_time = time.time() if entry_time is None else entry_time
        self._last = time.perf_counter()
        self.phases: dict[str, float] = dict(phases or {})
        self.held_at_start: dict[str, float] = {}  # held_memory() as the trial began

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    def metrics(self) -> dict[str, float]:
        return {"trial_entry_time": self.entry_time, **{f"setup.{k}": v for k, v in self.phases.items()},
                **self.held_at_start}


class TrialDiverged(FloatingPointError):
    """The training loss became NaN/inf: deterministic for this configuration, so retries stop at once."""


class OneProcessSession:
    """What ``train`` asks of a one-process run (world size 1); subclasses say where reports and checkpoints go."""

    rank, world_size = 0, 1
    marker: Path | None = None

    def checkpoint(self):
        return None  # nothing to resume from

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        raise NotImplementedError

    def all_finite(self, loss) -> bool:
        import torch

        return bool(torch.isfinite(loss))

    def stop_requested(self) -> bool:
        return False


class MemorySession(OneProcessSession):
    """Reports kept in a list (``.reports``, ``.checkpoints``: their folders' names): the loop without any
    launcher, for tests and benchmarks."""

    def __init__(self):
        self.reports: list[dict] = []
        self.checkpoints: list[str] = []

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        self.reports.append({**metrics, "final": final})
        self.checkpoints.append(name)


