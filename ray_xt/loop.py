"""The training loop of one trial rank, without Ray: a DeepSpeed engine around an XLM-R model (one task, or
several sharing one encoder), reporting at each dev evaluation to a ``Session``.

Lean on purpose (not the HF Trainer): each report carries a checkpoint holding the DeepSpeed engine state (a
retried trial resumes exactly where it stopped) and the encoder in ``save_pretrained`` form (what downstream
stages load). Where reports go is the session's business: Ray Tune (``ray_xt.trial``), a Ray Train worker
group, a warm trainer host (``ray_xt.trainer_hosts``), or a list in a test or benchmark. Nothing here imports
Ray; torch, DeepSpeed and transformers are imported when a loop runs.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import random
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ray_xt.config import ResolvedTrial
    from ray_xt.families.base import Family
    from ray_xt.tasks.registry import TaskSpec


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


@dataclass(frozen=True)
class Schedule:
    """A trial's step arithmetic, computed once: the study's ASHA horizon (``reports``) and the loop agree on it."""

    steps_per_epoch: int
    eval_every: int  # task steps between dev evaluations (and reports)
    total_steps: int  # task steps: what epochs count, reports and checkpoints are numbered by
    companion_ratio: float = 0.0  # the mlm condition's MLM steps per task step, on top of the task's

    @classmethod
    def of(cls, n_train: int, batch_size: int, epochs: float, evals_per_epoch: int,
           companion_ratio: float = 0.0) -> Schedule:
        """``n_train``: the scored tasks' training examples (never the MLM companion's text)."""
        steps_per_epoch = math.ceil(n_train / batch_size)
        return cls(steps_per_epoch, max(1, steps_per_epoch // evals_per_epoch),
                   max(1, round(steps_per_epoch * epochs)), companion_ratio)

    def companion_steps(self, task_steps: int) -> int:
        """MLM steps taken by the end of ``task_steps`` task steps: the fixed ratio, rounded down."""
        return math.floor(task_steps * self.companion_ratio + 1e-9)

    @property
    def optimizer_steps(self) -> int:
        """Every optimiser step of the trial (what the learning-rate schedule spans): task steps and MLM steps."""
        return self.total_steps + self.companion_steps(self.total_steps)

    @property
    def reports(self) -> int:
        """Evaluations a full trial makes (ASHA's ``max_t``): every ``eval_every`` steps and at the last step."""
        return math.ceil(self.total_steps / self.eval_every)

    def evaluates_after(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total_steps


def engine_zero_stage(zero_stage: int, bf16: bool) -> int:
    """The ZeRO stage the engine runs: a bf16 trial asked for ZeRO-0 runs ZeRO-1, whose bf16 optimizer (fp32
    master weights and fp32 gradient accumulation) is the one DeepSpeed maintains; its ZeRO-0 bf16 path is the
    legacy fp16-style wrapper that accumulates gradients in bf16. One rank: ZeRO-1 partitions nothing."""
    return max(zero_stage, 1) if bf16 else zero_stage


def deepspeed_config(batch_size: int, zero_stage: int, bf16: bool, world_size: int = 1, grad_accum: int = 1,
                     offload_optimizer: bool = False) -> dict:
    """``batch_size`` is the global (effective) batch: each of ``world_size`` ranks takes an equal share of it, in
    ``grad_accum`` micro-batches whose gradients one optimiser step sums (in fp32, also under bf16)."""
    if batch_size % (world_size * grad_accum):
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world_size} workers"
                         + (f" x {grad_accum} accumulation micro-batches" if grad_accum > 1 else ""))
    zero_stage = engine_zero_stage(zero_stage, bf16)
    return {
        "train_batch_size": batch_size,
        "train_micro_batch_size_per_gpu": batch_size // (world_size * grad_accum),
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": 1.0,
        # ZeRO-3 partitions parameters: gathering them for save_pretrained must be allowed
        "zero_optimization": {"stage": zero_stage,
                              **({"stage3_gather_16bit_weights_on_model_save": True} if zero_stage == 3 else {}),
                              # pinned host buffers: the GPU copies gradients out and weights back asynchronously
                              **({"offload_optimizer": {"device": "cpu", "pin_memory": _has_cuda()}}
                                 if offload_optimizer else {})},
        # the client optimizer is torch AdamW: no JIT-built fused op needed on CPU
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": bf16},
        # DeepSpeed's default accumulates in the model's dtype: bf16's 8 mantissa bits lose small micro-batch grads
        "data_types": {"grad_accum_dtype": "fp32"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _use_bf16(setting) -> bool:
    import torch

    if setting == "auto":  # native bf16 only: V100 and T4 emulate it, slower than fp32
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(setting)


def _linear_schedule(optimizer, warmup: int, total: int):
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


GROUP_BATCHES = 50  # batches per length group (HF's LengthGroupedSampler: megabatches of 50)


def _grouped_epoch_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[int]:
    """An epoch of the same shuffle as ``_epoch_order``, cut into groups of up to ``GROUP_BATCHES`` batches
    (fewer on small sets, at least 4 groups, as HF's ``LengthGroupedSampler``), each sorted by length
    (longest first) and cut into batches; the full batches are then shuffled, so the epoch has no long-to-short
    trend, and a short remainder batch stays last. Every example once per epoch, every batch ``batch_size``
    examples (the optimisation keeps its batch size and step count), but a batch pads to a similar length:
    on the micro tasks plain batches were 30-50% padding."""
    n = len(lengths)
    order = _epoch_order(n, seed, epoch)
    group = max(1, min(n // (batch_size * 4), GROUP_BATCHES)) * batch_size
    batches = []
    for start in range(0, n, group):
        chunk = sorted(order[start : start + group], key=lambda i: -lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    short = [b for b in batches if len(b) < batch_size]
    full = [b for b in batches if len(b) == batch_size]
    random.Random(seed * 100_003 + epoch + 1_000_000_007).shuffle(full)
    return [i for b in full + short for i in b]


def row_length(row) -> int:
    """Tokens of one feature row: its length, or its longest choice (multiple choice rows hold one per choice)."""
    if len(row) and not isinstance(row[0], numbers.Integral):
        return max(len(choice) for choice in row)
    return len(row)


@dataclass
class TaskPart:
    name: str
    spec: TaskSpec
    family: Family
    model: Any  # the family's transformers model
    train: dict
    dev: dict
    dev_examples: list


class TaskSchedule:
    """Which task and which examples each step trains on, a pure function of (step, seed).

    One task: consecutive batches of a per-epoch shuffle. Several: each step draws a task with probability
    proportional to its training-set size (examples-proportional mixing) and takes that task's next batch
    of its own shuffled epochs. Replaying the draws makes a resumed trial continue exactly.
    """

    def __init__(self, sizes: list[int], batch_size: int, seed: int, lengths: list[list[int]] | None = None):
        """``lengths``: each task's example lengths, to train on length-grouped batches
        (``_grouped_epoch_order``); None: plain shuffled batches."""
        self.sizes, self.batch_size, self.seed, self.lengths = sizes, batch_size, seed, lengths
        self._cursor = [0] * len(sizes)  # batches taken from each task so far
        self._step = 0
        self._orders: dict[int, tuple[int, list[int]]] = {}  # task -> (epoch, its order): not rebuilt every step

    def _order(self, k: int, epoch: int) -> list[int]:
        cached = self._orders.get(k)
        if cached is None or cached[0] != epoch:
            seed = self.seed + 7919 * k
            order = (_grouped_epoch_order(self.lengths[k], self.batch_size, seed, epoch) if self.lengths
                     else _epoch_order(self.sizes[k], seed, epoch))
            cached = self._orders[k] = (epoch, order)
        return cached[1]

    def _task_at(self, step: int) -> int:
        if len(self.sizes) == 1:
            return 0
        return random.Random(self.seed * 1_000_003 + step).choices(range(len(self.sizes)), weights=self.sizes)[0]

    def batch(self, step: int) -> tuple[int, list[int]]:
        if step < self._step:
            raise ValueError(f"step {step} comes before step {self._step}: a schedule only goes forward")
        while self._step < step:  # replay (resume): count the batches each task gave before
            self._cursor[self._task_at(self._step)] += 1
            self._step += 1
        k = self._task_at(step)
        n = self.sizes[k]
        per_epoch = math.ceil(n / self.batch_size)
        epoch, offset = divmod(self._cursor[k], per_epoch)
        order = self._order(k, epoch)
        self._cursor[k] += 1
        self._step += 1
        return k, order[offset * self.batch_size : (offset + 1) * self.batch_size]


def _multitask_module():
    import torch

    class MultiTaskModel(torch.nn.Module):
        """Task models sharing one encoder (each keeps its own head); saves the shared encoder."""

        def __init__(self, parts: list[TaskPart]):
            super().__init__()
            first = parts[0].model
            self.encoder = getattr(first, first.base_model_prefix)
            for part in parts[1:]:
                setattr(part.model, part.model.base_model_prefix, self.encoder)
                part.model.tie_weights()  # an MLM head's decoder follows the shared word embeddings
            self.heads = torch.nn.ModuleDict({part.name: part.model for part in parts})

        def forward(self, task: str, **batch):
            return self.heads[task](**batch)

        def save_pretrained(self, path: str) -> None:
            self.encoder.save_pretrained(path)  # downstream stages put their own head on it

    return MultiTaskModel


def MultiTaskModel(parts: list[TaskPart]):  # noqa: N802 - a class built lazily (torch is imported when a loop runs)
    return _multitask_module()(parts)


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


def train(config: dict, spec: TrialSpec, session: Session, clock: PhaseClock | None = None) -> None:
    """One rank's loop: ``config`` holds the searched values (learning_rate); ``session`` takes the reports.

    Gives back everything the trial held when it ends (finished, stopped or failed), so a process that runs
    trials one after another (a reused Tune actor, a warm trainer host) starts each with an empty device."""
    clock = clock or PhaseClock()
    clock.held_at_start = held_memory()
    try:
        _train(config, spec, session, clock)
    finally:
        release_memory()


def held_memory() -> dict[str, float]:
    """What this process holds before a trial builds anything: live DeepSpeed engines, parameters and device
    bytes. Reported with every evaluation (``memory.*_at_start``): in a reused actor or a warm host, anything
    above zero is the last trial's leftovers (a few ms per trial: one pass over the live objects)."""
    import gc
    import sys

    import torch

    gc.collect()
    engine_type = getattr(sys.modules.get("deepspeed"), "DeepSpeedEngine", None)
    engines = parameters = 0
    for o in gc.get_objects():
        if isinstance(o, torch.nn.Parameter):
            parameters += o.numel()
        elif engine_type is not None and isinstance(o, engine_type):
            engines += 1
    device = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
    return {"memory.engines_at_start": engines, "memory.parameters_at_start": parameters,
            "memory.device_bytes_at_start": device}


def release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train(config: dict, spec: TrialSpec, session: Session, clock: PhaseClock) -> None:
    import torch

    _quiet_libraries()
    clock.lap("imports")  # since entering the trial function: environment, torch/DeepSpeed/transformers imports
    started = time.perf_counter()
    lr = float(config["learning_rate"])
    torch.manual_seed(spec.seed)  # the fresh heads' initialisation
    parts, model, tokenizer = _load_model(spec, clock)
    sizes = [len(part.train["input_ids"]) for part in parts if part.family.scored]
    companion = any(not part.family.scored for part in parts)
    schedule = Schedule.of(sum(sizes), spec.batch_size, spec.epochs, spec.evals_per_epoch,
                           spec.mlm_ratio if companion else 0.0)
    engine = _engine(model, spec, lr, schedule, session.world_size)
    try:
        _steps(engine, parts, tokenizer, spec, config, schedule, session, clock, lr, started)
    finally:
        # the ZeRO optimizers hold the engine through gradient hooks on the parameters, closures the garbage
        # collector cannot see: destroy() removes them, or every trial's weights and optimizer states stay alive
        engine.destroy()


def _steps(engine, parts: list[TaskPart], tokenizer, spec: TrialSpec, config: dict, schedule: Schedule,
           session: Session, clock: PhaseClock, lr: float, started: float) -> None:
    """The optimiser steps from the resumed one to the last, with dev evaluations, checkpoints and reports."""
    clock.lap("deepspeed_init")
    step = _resume(engine, session)
    clock.lap("resume")

    engine.train()
    losses: list[float] = []
    companion_losses: list[float] = []
    first_step_seconds = None
    train_seconds, trained_examples = 0.0, 0  # optimiser work only: the throughput `ray-xt plan` learns from
    loop_seconds = {"evaluate": 0.0, "checkpoint": 0.0, "report": 0.0}
    tasks = [part for part in parts if part.family.scored]
    companion = next((part for part in parts if not part.family.scored), None)  # the mlm condition's MLM text
    lengths = [[row_length(r) for r in part.train["input_ids"]] for part in tasks] if spec.group_by_length else None
    batches = TaskSchedule([len(part.train["input_ids"]) for part in tasks], spec.batch_size, spec.seed, lengths)
    text = TaskSchedule([len(companion.train["input_ids"])], spec.batch_size, spec.seed + 1) if companion else None

    def optimizer_step(part: TaskPart, idx: list[int]) -> float:
        micro = [to_device(part.family.batch(part.train, m, tokenizer.pad_token_id), engine.device)
                 for m in micro_batches(rank_share(idx, session.rank, session.world_size), spec.grad_accum)]

        def forward(batch):
            return (engine(**batch) if len(parts) == 1 else engine(part.name, **batch)).loss

        return accumulated_step(engine, micro, forward, _divergence_check(session, step, lr))

    while step < schedule.total_steps and not session.stop_requested():
        step_started = time.perf_counter()
        k, idx = batches.batch(step)
        losses.append(optimizer_step(tasks[k], idx))
        trained_examples += len(idx)  # the global batch (every rank trained its share at once); MLM's below too
        step += 1
        if companion is not None and text is not None:  # MLM batches on top, at the fixed ratio
            for done in range(schedule.companion_steps(step - 1), schedule.companion_steps(step)):
                lines = text.batch(done)[1]
                companion_losses.append(optimizer_step(companion, lines))
                trained_examples += len(lines)
        train_seconds += time.perf_counter() - step_started
        if first_step_seconds is None:
            first_step_seconds = time.perf_counter() - started
            clock.lap("first_step")
        if schedule.evaluates_after(step):
            eval_started = time.perf_counter()
            scores = _dev_scores(parts, tokenizer.pad_token_id)
            loop_seconds["evaluate"] += time.perf_counter() - eval_started
            metrics = {
                "score": sum(scores.values()) / len(scores),  # multi-task: the mean of the tasks' dev scores
                **({f"score.{name}": v for name, v in scores.items()} if len(scores) > 1 else {}),
                "train_loss": sum(losses) / max(1, len(losses)),
                **({"mlm_loss": sum(companion_losses) / max(1, len(companion_losses)),
                    "mlm_steps": schedule.companion_steps(step)} if companion is not None else {}),
                "step": step,
                "epoch": step / schedule.steps_per_epoch,
                "learning_rate": lr,
                "seconds_to_first_step": first_step_seconds,
                "examples_per_second": trained_examples / max(train_seconds, 1e-9),
                "workers": session.world_size,
                **clock.metrics(),
                # where the time between optimiser steps goes, summed over the trial so far (a checkpoint's
                # and a report's own time only show in the next report): bench/orchestration_overhead.py
                "loop.train_s": train_seconds,
                **{f"loop.{k}_s": v for k, v in loop_seconds.items()},
            }
            losses, companion_losses = [], []
            with tempfile.TemporaryDirectory(prefix="ray_xt_ckpt_") as tmp:
                written = time.perf_counter()
                _write_checkpoint(Path(tmp), engine, tokenizer, spec, config, step, metrics, session.rank)
                reported = time.perf_counter()
                session.report(metrics, tmp, name=f"checkpoint_{step:08d}", final=step >= schedule.total_steps)
                loop_seconds["checkpoint"] += reported - written
                loop_seconds["report"] += time.perf_counter() - reported


def _quiet_libraries() -> None:
    from deepspeed.utils import logger as ds_logger
    from transformers.utils import logging as hf_logging

    ds_logger.setLevel(logging.WARNING)
    hf_logging.set_verbosity_error()


def _load_model(spec: TrialSpec, clock: PhaseClock):
    """Each task's features and its family's model (the pretrained or upstream encoder with a fresh head); with
    several tasks one encoder shared by all heads."""
    from transformers import AutoTokenizer

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.families.first_token import first_token_training
    from ray_xt.storage import materialize
    from ray_xt.tasks.registry import TASKS

    parts = []
    for inputs in spec.tasks:
        task = TASKS[inputs.task]
        family = family_of(task)
        train_set, _, _ = load_features(inputs.train_features)
        dev, dev_examples, _ = load_features(inputs.dev_features)
        clock.lap("features")
        head = family.load_model(str(materialize(spec.model_path)), len(inputs.labels), fresh_head=True,
                                 labels=list(inputs.labels))  # an upstream checkpoint on URI storage: a local copy
        parts.append(TaskPart(inputs.task, task, family, head, train_set, dev, dev_examples))
        clock.lap("model")
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_path)
    model = parts[0].model if len(parts) == 1 else MultiTaskModel(parts)
    if len(parts) == 1 and parts[0].family.first_token_logits and spec.zero_stage < 3:
        # the head reads only the first token: train the last layer for it alone (same loss and parameter
        # names). Not under ZeRO-3, whose parameter gathering traces the HF model's own module order.
        model = first_token_training(model, parts[0].family.first_token_logits)
    if spec.freeze_embeddings:
        for part in parts:
            getattr(part.model, part.model.base_model_prefix).embeddings.requires_grad_(False)
    clock.lap("model")
    return parts, model, tokenizer


def _engine(model, spec: TrialSpec, lr: float, schedule: Schedule, world_size: int):
    """The DeepSpeed engine: AdamW (no decay on biases and LayerNorms), linear warmup and decay."""
    import deepspeed
    import torch

    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if not any(k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in trained if any(k in n for k in ("bias", "LayerNorm"))]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if spec.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        from ray_xt.deepspeed_ops import load_cpu_adam_op

        # the optimizer steps on the host: DeepSpeed's vectorised CPU Adam (built once per environment by `make
        # install`, ~1 min), which its engine requires with offload (a torch optimizer there is several times slower)
        load_cpu_adam_op()  # under ray_xt's build lock, before DeepSpeedCPUAdam loads it from DeepSpeed's cache
        optimizer = DeepSpeedCPUAdam(groups, lr=lr, adamw_mode=True)
    else:
        # one kernel for all parameters (CPU and CUDA), as the HF Trainer's default adamw_torch_fused
        optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)
    steps = schedule.optimizer_steps
    scheduler = _linear_schedule(optimizer, int(spec.warmup_ratio * steps), steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler,
        config=deepspeed_config(spec.batch_size, spec.zero_stage, _use_bf16(spec.bf16), world_size, spec.grad_accum,
                                spec.offload_optimizer),
    )
    return engine


def _resume(engine, session: Session) -> int:
    """The step a retried trial continues from (its last report's), its engine state loaded; 0 for a new one."""
    resumed = session.checkpoint()
    if resumed is None:
        return 0
    with resumed.as_directory() as ckpt_dir:
        engine.load_checkpoint(str(Path(ckpt_dir) / "ds"), tag="state")
        return json.loads((Path(ckpt_dir) / "state.json").read_text())["step"]


def _divergence_check(session: Session, step: int, lr: float):
    """Raises TrialDiverged (and leaves the session's marker, so no retry trains again) on a non-finite loss."""
    def check(loss) -> None:
        if not session.all_finite(loss):
            reason = f"training loss became {loss.item()} at step {step + 1} (learning_rate={lr:.3g})"
            if session.marker is not None and session.rank == 0:
                session.marker.parent.mkdir(parents=True, exist_ok=True)
                session.marker.write_text(json.dumps({"reason": reason}) + "\n")
            raise TrialDiverged(reason)
    return check


def _dev_scores(parts: list[TaskPart], pad_id: int) -> dict[str, float]:
    """Every scored task's dev score. Every rank evaluates the whole dev set: under ZeRO-3 each forward needs all
    ranks to gather the parameters, so ranks must run the same forwards."""
    return {part.name: part.family.evaluate(part.model, part.dev, part.dev_examples, pad_id, part.spec, "en").score
            for part in parts if part.family.scored}  # the mlm condition's text is trained, never scored



def micro_batches(share: list[int], grad_accum: int) -> list[list[int]]:
    """A rank's share of a batch cut into ``grad_accum`` micro-batches, always that many: DeepSpeed applies the
    optimiser every ``grad_accum`` micro-steps, so a short last batch of an epoch repeats examples rather than
    shift that boundary."""
    size = -(-len(share) // grad_accum)
    parts = [share[i * size:(i + 1) * size] for i in range(grad_accum)]
    return [p or [share[i % len(share)]] for i, p in enumerate(parts)]


def accumulated_step(engine, batches: list[dict], forward, check) -> float:
    """One optimiser step over the accumulation micro-batches: forward and backward of each (DeepSpeed scales each
    loss by 1 / grad_accum), then ``check`` of their summed loss (raises on a non-finite one) before the last
    ``engine.step()``, the accumulation boundary where the optimiser applies the gradients; the mean loss.

    The losses stay on the device until the step's end: one host sync per optimiser step (the check; one
    collective in a worker group), not one per micro-batch."""
    total = None
    for i, batch in enumerate(batches):
        loss = forward(batch)
        engine.backward(loss)
        total = loss.detach() if total is None else total + loss.detach()
        if i < len(batches) - 1:
            engine.step()  # inside the accumulation: DeepSpeed only counts the micro-step
    assert total is not None, "micro_batches gives at least one batch"
    mean = float(total) / len(batches)  # the step's one wait for the device
    check(total)  # before the boundary: a non-finite loss never reaches the weights
    engine.step()
    return mean


def to_device(batch: dict, device) -> dict:
    """A batch's tensors on the training device; on a GPU from pinned memory without blocking the host, so the
    copy overlaps the work already queued."""
    import torch

    if torch.device(device).type != "cuda":
        return {key: v.to(device) for key, v in batch.items()}
    return {key: v.pin_memory().to(device, non_blocking=True) for key, v in batch.items()}


def rank_share(idx: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's part of a global batch: every ``world_size``-th example, never empty (a short last batch
    of an epoch lends its first examples to ranks that would get none)."""
    share = idx[rank::world_size]
    return share or [idx[rank % len(idx)]]


def gathered_state_dict(module, rank: int) -> dict | None:
    """A ZeRO-3 model's whole state dict on rank 0 (None elsewhere), gathered one module's own parameters at a time
    with DeepSpeed's public ``GatheredParameters`` (a collective: every rank calls this), so no device ever holds
    more than one module's full weights beside its shards; tied parameters stay one tensor."""
    import deepspeed

    names = module.state_dict(keep_vars=True)  # the names save_pretrained writes; parameters still partitioned
    gathered: dict[int, object] = {}
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        with deepspeed.zero.GatheredParameters(own, modifier_rank=None):
            if rank == 0:
                for param in own:
                    gathered.setdefault(id(param), param.detach().to("cpu", copy=True))
    if rank != 0:
        return None
    return {name: gathered[id(value)] if id(value) in gathered else value.detach().cpu()
            for name, value in names.items()}


def _write_checkpoint(path: Path, engine, tokenizer, spec: TrialSpec, config: dict, step: int, metrics: dict,
                      rank: int = 0) -> None:
    """Every rank writes its DeepSpeed shard (a collective); rank 0 adds the model and the trial's records.

    With several workers, Ray Train merges the ranks' folders into one checkpoint.
    """
    engine.save_checkpoint(str(path / "ds"), tag="state")
    if spec.zero_stage == 3:  # parameters are partitioned: gather a full state dict (a collective) first
        state = gathered_state_dict(engine.module, rank)
        if rank == 0:
            engine.module.save_pretrained(str(path / "model"), state_dict=state)
    elif rank == 0:
        engine.module.save_pretrained(str(path / "model"))  # ZeRO-0/1/2 keep full parameters on every rank
    if rank != 0:
        return
    tokenizer.save_pretrained(str(path / "model"))
    (path / "state.json").write_text(json.dumps({"step": step, "metrics": metrics}) + "\n")
    resolved = {"searched": config, "fixed": asdict(spec)}
    (path / "trial_config.json").write_text(json.dumps(resolved, indent=1, default=str) + "\n")
    (path / "git_revision.txt").write_text(spec.git_revision + "\n")
