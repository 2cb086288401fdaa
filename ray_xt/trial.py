"""One fine-tuning run: a DeepSpeed engine around an XLM-R model, reporting to Ray Tune.

The loop is lean on purpose (not the HF Trainer): it reports at each dev
evaluation with a checkpoint that holds both the DeepSpeed engine state (to
resume a retried trial exactly where it stopped) and the encoder in
``save_pretrained`` form (what downstream stages load).

A trial runs in one of two shapes, chosen by ``TrialSpec.workers``:

- one process with ``cpus``/``gpus``, reporting with ``tune.report``: on CPUs a warm trainer host of the study
  (``ray_xt.trainer_hosts``), driven by the Tune trial, which holds the CPUs and forwards the reports; on GPUs
  (or with ``warm_trainers: false``) the Tune trial actor itself;
- ``workers`` > 1: the Tune trial is only a driver that runs a Ray Train ``TorchTrainer`` of that many
  data-parallel workers, each one rank of the same DeepSpeed engine (ZeRO-2/3). Under Train V2 the workers
  report with ``ray.train.report``; Train persists the (merged) checkpoint in the trial's own storage folder
  and ``TuneReportCallback`` forwards rank 0's metrics, with the checkpoint's path as ``checkpoint_path``, to
  Tune (ASHA, OptunaSearch and the MLflow callback see them as usual).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import random
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ray_xt.deepspeed_ops import load_shm_comm_op


@dataclass(frozen=True)
class TaskInputs:
    """One task a trial trains on: its cached features and label space."""

    task: str
    labels: tuple[str, ...]  # classification labels / tag set (empty for multiple choice and QA)
    train_features: str
    dev_features: str


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
    freeze_embeddings: bool = False  # the encoder's embedding layer is not trained
    group_by_length: bool = False  # length-grouped batches (TaskSchedule): less padding, same batches per epoch
    grad_accum: int = 1  # micro-batches per optimiser step; batch_size stays the effective batch
    # the study's TrainerPool (ray_xt.trainer_hosts): a one-process CPU trial trains in a warm host process
    # leased from it and only drives it; None: the trial trains in its own (Tune actor) process
    trainer_pool: str | None = None

    @classmethod
    def from_record(cls, fields: dict) -> "TrialSpec":
        """The spec a stage record stores as ``asdict(spec)`` (JSON lists where the spec has tuples)."""
        tasks = tuple(TaskInputs(**{**t, "labels": tuple(t["labels"])}) for t in fields["tasks"])
        return cls(**{**fields, "tasks": tasks})


def free_port() -> int:
    """A free TCP port for ``MASTER_PORT``: a one-process trial binds nothing (its group starts on an in-process
    store), but code that reads the variable should find a port of its own, not DeepSpeed's default 29500 that
    every concurrent trial would share."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_deepspeed_accelerator() -> None:
    """DeepSpeed picks its accelerator when it is first imported: the CPU one where there is no GPU."""
    import torch

    use_environment_extension_cache()
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def use_environment_extension_cache() -> None:
    """Keep DeepSpeed's JIT-built ops (the CPU shm comm op: ~60 s to compile on 2 cores) inside this Python
    environment instead of the user-wide ``~/.cache/torch_extensions``.

    The build command names the environment's include paths, and torch rebuilds an op whenever the command
    changes, so two checkouts (say a CI clone and a working copy) sharing the user-wide cache rebuild each
    other's op: measured here, every first trial of a sweep then sat ~57 s in ``deepspeed_init``. The op that
    ``make install`` builds (``ray_xt.warmup``) is the one this environment's trials load. A user's own
    ``TORCH_EXTENSIONS_DIR`` wins.
    """
    if os.access(sys.prefix, os.W_OK):
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))


def prepare_process(cpus: float) -> None:
    """Environment for a single-process DeepSpeed engine inside a Tune trial actor."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    choose_deepspeed_accelerator()
    load_shm_comm_op()  # before DeepSpeed's process group asks for it: see ray_xt.deepspeed_ops
    # Torch defaults to all cores; concurrent trials on shared cores then thrash.
    torch.set_num_threads(max(1, int(cpus)))
    if "RANK" not in os.environ:  # Ray Train workers come with their own rendezvous
        os.environ.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1"
        )
        init_single_process_group()


def init_single_process_group() -> None:
    """A world of one needs no rendezvous: its process group starts on an in-process store.

    Through ``env://`` rank 0 would serve a TCP store on ``MASTER_PORT``, a port chosen free a moment earlier
    that another process (a concurrent trial, one of Ray's connections) can take in between; DeepSpeed then
    adopts the group that is already there (``deepspeed.comm.init_distributed``). A warm trainer host keeps the
    group for every trial it runs.
    """
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    if not dist.is_initialized():  # the backend DeepSpeed would choose: gloo on CPUs, NCCL on CUDA
        dist.init_process_group(get_accelerator().communication_backend_name(), store=dist.HashStore(), rank=0,
                                world_size=1)


def deepspeed_config(batch_size: int, zero_stage: int, bf16: bool, world_size: int = 1, grad_accum: int = 1) -> dict:
    """``batch_size`` is the global (effective) batch: each of ``world_size`` ranks takes an equal share of it, in
    ``grad_accum`` micro-batches whose gradients one optimiser step sums."""
    if batch_size % (world_size * grad_accum):
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world_size} workers"
                         + (f" x {grad_accum} accumulation micro-batches" if grad_accum > 1 else ""))
    return {
        "train_batch_size": batch_size,
        "train_micro_batch_size_per_gpu": batch_size // (world_size * grad_accum),
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": 1.0,
        # ZeRO-3 partitions parameters: gathering them for save_pretrained must be allowed
        "zero_optimization": {"stage": zero_stage,
                              **({"stage3_gather_16bit_weights_on_model_save": True} if zero_stage == 3 else {})},
        # the client optimizer is torch AdamW: no JIT-built fused op needed on CPU
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _use_bf16(setting) -> bool:
    import torch

    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
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
    spec: object  # TaskSpec
    family: object
    model: object
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
        if step < self._step:  # never happens in a trial; keeps the function pure if it did
            self._cursor, self._step = [0] * len(self.sizes), 0
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


def MultiTaskModel(parts: list[TaskPart]):  # noqa: N802 - a class built lazily (torch is imported in the trial)
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

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    def metrics(self) -> dict[str, float]:
        return {"trial_entry_time": self.entry_time, **{f"setup.{k}": v for k, v in self.phases.items()}}


class TrialDiverged(FloatingPointError):
    """The training loss became NaN/inf: deterministic for this configuration, so retries stop at once."""


def _divergence_marker() -> Path | None:
    """A file in the trial's storage folder: a retried trial (any node) finds it and does not train again."""
    from ray import tune

    try:
        return Path(tune.get_context().get_storage().trial_fs_path) / "diverged.json"
    except Exception:  # noqa: BLE001 - outside Tune (no storage context): no marker
        return None


def _stop_if_diverged(marker: Path | None) -> None:
    """Tune retries failed trials and Train restarts worker groups; a diverged trial would diverge again."""
    if marker is not None and marker.exists():
        raise TrialDiverged(json.loads(marker.read_text())["reason"] + " (not retried: deterministic)")


def final_report(metrics: dict, final: bool) -> dict:
    """A trial's last report says so (Tune's ``done``): Tune then ends the trial from inside ``tune.report``
    at once. A function that simply returns costs every trial ~1 s more, Tune's wait for an error that never
    comes (``_ERROR_FETCH_TIMEOUT`` in ray.train._internal.session; docs/benchmarks.md)."""
    return {**metrics, "done": True} if final else metrics


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


class TuneSession(OneProcessSession):
    """A one-process trial in its Tune actor: checkpoints and metrics go straight to Ray Tune, which stops the
    trial from inside ``tune.report``."""

    def __init__(self, marker: Path | None):
        self.marker = marker

    def checkpoint(self):
        from ray import tune

        return tune.get_checkpoint()

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        from ray import tune

        tune.report(final_report(metrics, final), checkpoint=tune.Checkpoint.from_directory(directory))


class TrainWorkerSession:
    """One rank of a Ray Train worker group: Train merges every rank's checkpoint folder into one."""

    def __init__(self, marker: Path | None):
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.marker = marker

    def checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        import ray.train

        # Every rank reports (Train's barrier); rank 0's metrics are the ones kept. The folder name must be the
        # same on every rank for Train to merge the ranks' shards into one checkpoint: its default is a
        # timestamp taken by each rank.
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory), checkpoint_dir_name=name)

    def all_finite(self, loss) -> bool:
        """Agreed by every rank: one rank stopping alone would leave the others waiting in a collective."""
        import torch
        import torch.distributed as dist

        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=loss.device)  # NCCL: on the GPU
        dist.all_reduce(bad)
        return bad.item() == 0

    def stop_requested(self) -> bool:
        return False  # Train stops its workers from inside ray.train.report


def run_trial(config: dict, spec: TrialSpec) -> None:
    """Tune function trainable. ``config`` holds the searched values (learning_rate)."""
    from ray_xt.sweep import quiet_tune_console
    from ray_xt.trial_workers import replace_this_worker

    clock = PhaseClock()
    quiet_tune_console()  # this trial actor's checkpoint INFO lines
    marker = _divergence_marker()
    _stop_if_diverged(marker)
    if spec.trainer_pool is not None:  # the study set it only for CPU trials (StudyRunner._hosted)
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
    train(config, spec, TuneSession(marker), clock)


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
        ),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=tune.get_context().get_storage().trial_fs_path,
            failure_config=ray.train.FailureConfig(max_failures=spec.worker_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="score", checkpoint_score_order="max"),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def train_worker(loop_config: dict) -> None:
    """One Ray Train worker: a rank of the trial's DeepSpeed engine (the process group is Train's)."""
    clock = PhaseClock()
    spec: TrialSpec = loop_config["spec"]
    marker = Path(loop_config["marker"]) if loop_config["marker"] else None
    _stop_if_diverged(marker)  # a worker-group restart after divergence
    prepare_process(spec.cpus)
    train(loop_config["config"], spec, TrainWorkerSession(marker), clock)


def train(config: dict, spec: TrialSpec, session, clock: PhaseClock | None = None) -> None:
    """The training loop of one rank: ``session`` says where checkpoints and metrics go."""
    clock = clock or PhaseClock()
    marker = session.marker
    import deepspeed
    import torch
    from deepspeed.utils import logger as ds_logger
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.families.first_token import first_token_training
    from ray_xt.storage import materialize
    from ray_xt.tasks.registry import TASKS

    ds_logger.setLevel(logging.WARNING)
    hf_logging.set_verbosity_error()
    clock.lap("imports")  # since entering the trial function: environment, torch/DeepSpeed/transformers imports
    started = time.perf_counter()
    lr = float(config["learning_rate"])
    torch.manual_seed(spec.seed)

    parts = []
    for inputs in spec.tasks:
        task = TASKS[inputs.task]
        family = family_of(task)
        train_set, _, _ = load_features(inputs.train_features)
        dev, dev_examples, _ = load_features(inputs.dev_features)
        clock.lap("features")
        # the pretrained or intermediate encoder with a fresh head of this task's family
        head = family.load_model(str(materialize(spec.model_path)), len(inputs.labels), fresh_head=True,
                                 labels=list(inputs.labels))  # an upstream checkpoint on URI storage: a local copy
        parts.append(TaskPart(inputs.task, task, family, head, train_set, dev, dev_examples))
        clock.lap("model")
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_path)
    pad_id = tokenizer.pad_token_id
    model = parts[0].model if len(parts) == 1 else MultiTaskModel(parts)
    if len(parts) == 1 and parts[0].family.first_token_logits and spec.zero_stage < 3:
        # the head reads only the first token: train the last layer for it alone (same loss and parameter
        # names). Not under ZeRO-3, whose parameter gathering traces the HF model's own module order.
        model = first_token_training(model, parts[0].family.first_token_logits)
    if spec.freeze_embeddings:
        for part in parts:
            encoder = getattr(part.model, part.model.base_model_prefix)
            encoder.embeddings.requires_grad_(False)
    clock.lap("model")
    sizes = [len(part.train["input_ids"]) for part in parts]
    n_train = sum(sizes)
    steps_per_epoch = math.ceil(n_train / spec.batch_size)
    total_steps = max(1, round(steps_per_epoch * spec.epochs))
    eval_every = max(1, steps_per_epoch // spec.evals_per_epoch)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if not any(k in n for k in ("bias", "LayerNorm"))]
    no_decay = [p for n, p in trained if any(k in n for k in ("bias", "LayerNorm"))]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr,
        fused=True,  # one kernel for all parameters (CPU and CUDA), as the HF Trainer's default adamw_torch_fused
    )
    scheduler = _linear_schedule(optimizer, int(spec.warmup_ratio * total_steps), total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler,
        config=deepspeed_config(spec.batch_size, spec.zero_stage, _use_bf16(spec.bf16), session.world_size,
                                spec.grad_accum),
    )
    clock.lap("deepspeed_init")

    step = 0
    resumed = session.checkpoint()
    if resumed is not None:  # a retried trial continues from its last report
        with resumed.as_directory() as ckpt_dir:
            engine.load_checkpoint(str(Path(ckpt_dir) / "ds"), tag="state")
            step = json.loads((Path(ckpt_dir) / "state.json").read_text())["step"]
    clock.lap("resume")

    engine.train()
    losses: list[float] = []
    first_step_seconds = None
    train_seconds, trained_examples = 0.0, 0  # optimiser work only: the throughput `ray-xt plan` learns from
    loop_seconds = {"evaluate": 0.0, "checkpoint": 0.0, "report": 0.0}
    lengths = [[row_length(r) for r in part.train["input_ids"]] for part in parts] if spec.group_by_length else None
    schedule = TaskSchedule(sizes, spec.batch_size, spec.seed, lengths)
    while step < total_steps and not session.stop_requested():
        step_started = time.perf_counter()
        k, idx = schedule.batch(step)
        part = parts[k]
        shard = rank_share(idx, session.rank, session.world_size)
        batches = [{key: v.to(engine.device) for key, v in part.family.batch(part.train, micro, pad_id).items()}
                   for micro in micro_batches(shard, spec.grad_accum)]

        def forward(batch, part=part):
            return (engine(**batch) if len(parts) == 1 else engine(part.name, **batch)).loss

        def check(loss, step=step):
            if not session.all_finite(loss):
                reason = f"training loss became {loss.item()} at step {step + 1} (learning_rate={lr:.3g})"
                if marker is not None and session.rank == 0:
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.write_text(json.dumps({"reason": reason}) + "\n")
                raise TrialDiverged(reason)

        losses.append(accumulated_step(engine, batches, forward, check))
        step += 1
        train_seconds += time.perf_counter() - step_started
        trained_examples += len(idx)  # the global batch: every rank trained its share at the same time
        if first_step_seconds is None:
            first_step_seconds = time.perf_counter() - started
            clock.lap("first_step")
        if step % eval_every == 0 or step == total_steps:
            # Every rank evaluates the whole dev set: under ZeRO-3 each forward needs all ranks to gather
            # the parameters, so ranks must run the same forwards.
            eval_started = time.perf_counter()
            scores = {}
            for part in parts:
                if part.family.scored:  # the mlm condition's text is trained, never scored
                    evaluation = part.family.evaluate(part.model, part.dev, part.dev_examples, pad_id, part.spec, "en")
                    scores[part.name] = evaluation.score
            loop_seconds["evaluate"] += time.perf_counter() - eval_started
            metrics = {
                "score": sum(scores.values()) / len(scores),  # multi-task: the mean of the tasks' dev scores
                **({f"score.{name}": v for name, v in scores.items()} if len(scores) > 1 else {}),
                "train_loss": sum(losses) / max(1, len(losses)),
                "step": step,
                "epoch": step / steps_per_epoch,
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
            losses = []
            with tempfile.TemporaryDirectory(prefix="ray_xt_ckpt_") as tmp:
                written = time.perf_counter()
                _write_checkpoint(Path(tmp), engine, tokenizer, spec, config, step, metrics, session.rank)
                reported = time.perf_counter()
                session.report(metrics, tmp, name=f"checkpoint_{step:08d}", final=step >= total_steps)
                loop_seconds["checkpoint"] += reported - written
                loop_seconds["report"] += time.perf_counter() - reported


def micro_batches(share: list[int], grad_accum: int) -> list[list[int]]:
    """A rank's share of a batch cut into ``grad_accum`` micro-batches, always that many: DeepSpeed applies the
    optimiser every ``grad_accum`` micro-steps, so a short last batch of an epoch repeats examples rather than
    shift that boundary."""
    size = -(-len(share) // grad_accum)
    parts = [share[i * size:(i + 1) * size] for i in range(grad_accum)]
    return [p or [share[i % len(share)]] for i, p in enumerate(parts)]


def accumulated_step(engine, batches: list[dict], forward, check) -> float:
    """One optimiser step over the accumulation micro-batches: forward, ``check`` (raises on a bad loss), backward
    (DeepSpeed scales each loss by 1 / grad_accum) and step (applied at the accumulation boundary); the mean loss."""
    total = 0.0
    for batch in batches:
        loss = forward(batch)
        check(loss)
        engine.backward(loss)
        engine.step()
        total += loss.item()
    return total / len(batches)


def rank_share(idx: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's part of a global batch: every ``world_size``-th example, never empty (a short last batch
    of an epoch lends its first examples to ranks that would get none)."""
    share = idx[rank::world_size]
    return share or [idx[rank % len(idx)]]


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


def _write_checkpoint(path: Path, engine, tokenizer, spec: TrialSpec, config: dict, step: int, metrics: dict,
                      rank: int = 0) -> None:
    """Every rank writes its DeepSpeed shard (a collective); rank 0 adds the model and the trial's records.

    With several workers, Ray Train merges the ranks' folders into one checkpoint.
    """
    engine.save_checkpoint(str(path / "ds"), tag="state")
    if spec.zero_stage == 3:  # parameters are partitioned: gather a full state dict (a collective) first
        state = engine._zero3_consolidated_16bit_state_dict()
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
