"""What a study needs before it runs: the peak device memory of one trial rank, and the storage its checkpoints
hold. The arithmetic and its sources are in docs/memory.md; tests/test_budgets.py pins the parameter counts to
transformers' models and the model-state and checkpoint bytes to what a real DeepSpeed engine holds and writes."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ray_xt.config import StudyConfig
from ray_xt.loop import engine_zero_stage
from ray_xt.scales import SCALES
from ray_xt.stages import Stage
from ray_xt.tasks.registry import TASKS

GB = 1e9
DEVICE_SIZES_GB = (24, 40, 80)  # A10G / L4; A100 40 GB; A100 / H100 80 GB
CONTEXT_BYTES = 1.0 * GB  # CUDA context, cuBLAS and NCCL workspaces
FRAGMENTATION = 1.10  # the caching allocator's blocks are larger than the tensors in them
# DeepSpeed's defaults (deepspeed/runtime/zero/config.py), in elements
REDUCE_BUCKET = 5e8  # ZeRO-2/3 gradient reduction bucket
MAX_LIVE_PARAMETERS = 1e9  # ZeRO-3: gathered parameters kept before release
FP32_OPTIMIZER_BYTES = 12  # fp32 master weights + Adam's two moments, per parameter
TOKENIZER_BYTES = {"hub": 22e6, "micro": 0.1e6}  # sentencepiece model + tokenizer.json, saved with every model


@dataclass(frozen=True)
class Architecture:
    """The shape of an XLM-R encoder, as its config.json states it."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    positions: int = 514

    @property
    def embedding_parameters(self) -> int:
        h = self.hidden
        return (self.vocab + self.positions + 1) * h + 2 * h  # words, positions, one token type, LayerNorm

    @property
    def layer_parameters(self) -> int:
        h, i = self.hidden, self.intermediate
        return 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h  # attention, feed-forward, two LayerNorms

    @property
    def parameters(self) -> int:
        """The encoder with a task head (a dense layer of hidden x hidden; the label projection is negligible)."""
        return self.embedding_parameters + self.layers * self.layer_parameters + self.hidden * self.hidden + self.hidden


# config.json of the hub checkpoints (FacebookAI/xlm-roberta-base, -large; facebook/xlm-roberta-xl)
HUB_ARCHITECTURES = {
    "xlmr-base": Architecture(vocab=250002, hidden=768, layers=12, heads=12, intermediate=3072),
    "xlmr-large": Architecture(vocab=250002, hidden=1024, layers=24, heads=16, intermediate=4096),
    "xlmr-xl": Architecture(vocab=250880, hidden=2560, layers=36, heads=32, intermediate=10240),
}


def architecture(cfg: StudyConfig, scale: str) -> Architecture:
    micro = SCALES[scale].micro
    if micro is None:
        return HUB_ARCHITECTURES[scale]
    # the world's tokenizer has at most vocab_size pieces, plus XLM-R's special tokens
    return Architecture(vocab=cfg.micro.vocab_size + 5, hidden=micro.hidden_size, layers=micro.num_layers,
                        heads=micro.num_heads, intermediate=micro.intermediate_size, positions=micro.max_length + 3)


@dataclass(frozen=True)
class TrialShape:
    """The resolved trial settings the arithmetic reads (``StudyConfig.resolved_trial`` fills every one)."""

    batch_size: int
    grad_accum: int
    workers: int
    zero_stage: int
    offload: bool
    gpus: float
    bf16: bool | str
    max_seq_length: int

    @classmethod
    def of(cls, cfg: StudyConfig, task: str, scale: str) -> TrialShape:
        t = cfg.resolved_trial(task, scale)
        return cls(batch_size=t.batch_size, grad_accum=t.grad_accum, workers=t.workers, zero_stage=t.zero_stage,
                   offload=t.offload_optimizer, gpus=t.gpus, bf16=t.bf16, max_seq_length=t.max_seq_length)

    def uses_bf16(self, on_gpu: bool | None = None) -> bool:
        """Whether the trial trains in bf16: on a GPU (default: where the scale's resources put it) with ``bf16``
        auto or on; ``auto`` is bf16 on every GPU the cluster files ship."""
        gpu = self.gpus > 0 if on_gpu is None else on_gpu
        return gpu and self.bf16 is not False

    @property
    def micro_batch(self) -> int:
        """Examples one rank takes per micro-batch."""
        return self.batch_size // (self.workers * self.grad_accum)


@dataclass(frozen=True)
class DeviceMemory:
    """Peak bytes one rank of a trial holds on its device, by what holds them."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float  # CUDA context and allocator slack (0 on CPU)
    host_optimizer: float  # offloaded optimizer state in the node's host memory, per rank
    share: float  # the part of a device the trial's rank is given (gpus per worker; 1 on CPU)

    @property
    def model_states(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return (self.model_states + self.activations) * FRAGMENTATION + self.overhead

    def fits(self, device_gb: float) -> bool:
        """Whether the rank fits its share of a device of this size."""
        return self.total <= device_gb * GB * self.share


def trial_memory(cfg: StudyConfig, task: str, scale: str, on_gpu: bool | None = None) -> DeviceMemory:
    """Peak device memory of one rank of a task's trials at a scale, at the study's micro-batch. ``on_gpu``:
    whether the trial trains on a GPU (default: the scale's resources say so); there ``bf16: auto`` is bf16, as on
    every GPU the cluster files ship."""
    t = TrialShape.of(cfg, task, scale)
    gpu = t.gpus > 0 if on_gpu is None else on_gpu
    bf16 = t.uses_bf16(on_gpu)
    arch = architecture(cfg, scale)
    weights, gradients, optimizer, host = model_state_bytes(arch.parameters, bf16, t.zero_stage, t.workers, t.offload)
    return DeviceMemory(weights, gradients, optimizer, activation_bytes(task, arch, t, 2 if bf16 else 4),
                        CONTEXT_BYTES if gpu else 0.0, host, min(1.0, t.gpus) if gpu and t.gpus else 1.0)


def model_state_bytes(p: int, bf16: bool, zero_stage: int, workers: int, offload: bool = False) -> tuple[float, ...]:
    """(weights, gradients, optimizer states, offloaded host bytes) one rank holds at its peak (between a backward
    and the optimizer step) for ``p`` parameters, as DeepSpeed lays them out."""
    wb, n = (2 if bf16 else 4), workers
    zero = engine_zero_stage(zero_stage, bf16)
    weights = p * wb / (n if zero == 3 else 1) + (min(MAX_LIVE_PARAMETERS, p) * wb if zero == 3 else 0)
    if zero <= 1:  # whole gradients; BF16_Optimizer adds its whole fp32 accumulation buffer
        gradients = p * wb + (p * 4.0 if bf16 else 0.0)
    else:
        # ZeRO-2/3: gradients reduce through a bucket (a model smaller than the bucket needs none beside its
        # partitions) into this rank's partition, fp32 under bf16 too; offloaded, the fp32 partition is on the host
        bucket = REDUCE_BUCKET * wb if p > REDUCE_BUCKET else 0.0
        gradients = p * (wb if offload else 4) / n + bucket
    # fp32 master weights (ZeRO keeps an fp32 partition also of an fp32 model) and Adam's two moments
    states = p * (FP32_OPTIMIZER_BYTES if bf16 or zero >= 1 else 8) / (n if zero >= 1 else 1)
    return (weights, gradients, 0.0, states) if offload else (weights, gradients, states, 0.0)


def activation_bytes(task: str, arch: Architecture, t: TrialShape, wb: int) -> float:
    """Activations kept for the backward pass of one micro-batch: per layer s*b*h*(34 + 5*a*s/h) bytes in 16-bit
    (Korthikanti et al. 2022, eq. 1, no recomputation), doubled in fp32; a masked-LM stage adds its vocabulary
    logits (and their gradient and fp32 softmax)."""
    spec = TASKS[task]
    s = t.max_seq_length
    b = t.micro_batch * max(1, spec.num_choices)  # sequences per micro-batch
    h, a = arch.hidden, arch.heads
    per_layer = s * b * h * (34 + 5 * a * s / h) * wb / 2
    logits = s * b * arch.vocab * (2 * wb + 4) if spec.family == "masked_lm" else 0.0
    return arch.layers * per_layer + logits


@dataclass(frozen=True)
class CheckpointBytes:
    model: float  # model/ in save_pretrained form, with its tokenizer
    optimizer_state: float  # ds/: DeepSpeed's module and optimizer states


def checkpoint_bytes(cfg: StudyConfig, task: str, scale: str, on_gpu: bool | None = None) -> CheckpointBytes:
    t = TrialShape.of(cfg, task, scale)
    tokenizer = TOKENIZER_BYTES["micro" if SCALES[scale].is_micro else "hub"]
    model, state = saved_bytes(architecture(cfg, scale).parameters, t.uses_bf16(on_gpu), t.zero_stage)
    return CheckpointBytes(model + tokenizer, state)


def saved_bytes(p: int, bf16: bool, zero_stage: int) -> tuple[float, float]:
    """(model/, ds/) bytes of a checkpoint of ``p`` parameters: the weights in the training dtype; DeepSpeed's
    module states plus its optimizer states (fp32 master weights where ZeRO or bf16 keep them, Adam's moments)."""
    wb = 2 if bf16 else 4
    zero = engine_zero_stage(zero_stage, bf16)
    return p * wb, p * wb + p * (FP32_OPTIMIZER_BYTES if bf16 or zero >= 1 else 8)


@dataclass(frozen=True)
class StorageBudget:
    kept: float  # what the finished study keeps: one model per sweep stage
    peak: float  # the most it holds while running


def stage_storage(cfg: StudyConfig, stage: Stage) -> tuple[float, float]:
    """(kept, while running) bytes of one sweep stage: its best model once finished; while it runs, every
    finished trial's best and latest models and every running trial's two models and optimizer state
    (ray_xt.retention)."""
    if not stage.sweeps:
        return 0.0, 0.0
    c = checkpoint_bytes(cfg, stage.task, stage.scale)
    running = min(cfg.search.max_concurrent, cfg.search.num_samples)
    return c.model, cfg.search.num_samples * 2 * c.model + running * c.optimizer_state


def study_storage(cfg: StudyConfig, stages: list[Stage]) -> StorageBudget:
    """Checkpoint bytes of ``stages``: kept when done, and the peak (everything kept plus the ``parallel_stages``
    largest running sweeps)."""
    sizes = [stage_storage(cfg, s) for s in stages]
    kept = sum(k for k, _ in sizes)
    transient = sorted((r for _, r in sizes), reverse=True)[: cfg.parallel_stages]
    return StorageBudget(kept, kept + sum(transient))


def free_bytes(folder: str) -> float:
    """Free bytes on the filesystem that holds (or will hold) ``folder``."""
    path = Path(folder).expanduser().resolve()
    while not path.exists():
        path = path.parent
    return float(shutil.disk_usage(path).free)


def human(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def _study_tasks(stages: list[Stage], scale: str) -> list[str]:
    return sorted({s.task for s in stages if s.scale == scale and s.sweeps and s.task in TASKS})


def budget_lines(cfg: StudyConfig, stages: list[Stage], storage_folder: str | None) -> list[str]:
    """What `ray-xt plan` prints: per scale the peak device memory of a trial rank (its most demanding task) and
    whether it fits 24 / 40 / 80 GB GPUs; the checkpoint storage per scale and for the study."""
    lines = ["\ndevice memory per trial rank at the study's micro-batch (estimate; docs/memory.md):",
             "| scale | parameters | engine | largest micro-batch | per rank | host (offloaded) | fits "
             + " / ".join(f"{g} GB" for g in DEVICE_SIZES_GB) + " |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for scale in cfg.scales:
        tasks = _study_tasks(stages, scale)
        if not tasks:
            continue
        task = max(tasks, key=lambda name: trial_memory(cfg, name, scale).total)
        m, t = trial_memory(cfg, task, scale), TrialShape.of(cfg, task, scale)
        gpu = t.gpus > 0
        zero = engine_zero_stage(t.zero_stage, t.uses_bf16())
        engine = f"ZeRO-{zero}{' offload' if t.offload else ''}" + (f", {t.workers} ranks" if t.workers > 1 else "")
        choices = f"{TASKS[task].num_choices} choices x " if TASKS[task].num_choices else ""
        micro = f"{t.micro_batch} x {choices}{t.max_seq_length} ({task})"
        share = f" of {m.share:g} GPU" if gpu and m.share < 1 else ""
        fits = " / ".join("yes" if m.fits(g) else "NO" for g in DEVICE_SIZES_GB) if gpu else "CPU trial"
        lines.append(f"| {scale} | {architecture(cfg, scale).parameters / 1e6:,.1f} M | {engine} | {micro} | "
                     f"{human(m.total)}{share} | {human(m.host_optimizer) if m.host_optimizer else '-'} | {fits} |")
    lines += ["\ncheckpoint storage (a finished sweep keeps its best model; a running trial its latest optimizer state):",
              "| scale | sweep stages | model | with optimizer state | kept when done | peak while running |",
              "| --- | --- | --- | --- | --- | --- |"]
    for scale in cfg.scales:
        mine = [s for s in stages if s.scale == scale and s.sweeps]
        if not mine:
            continue
        c = max((checkpoint_bytes(cfg, s.task, scale) for s in mine), key=lambda b: b.optimizer_state)
        budget = study_storage(cfg, mine)
        lines.append(f"| {scale} | {len(mine)} | {human(c.model)} | {human(c.model + c.optimizer_state)} | "
                     f"{human(budget.kept)} | {human(budget.peak)} |")
    whole = study_storage(cfg, stages)
    free = f"; {human(free_bytes(storage_folder))} free at {storage_folder}" if storage_folder else ""
    lines.append(f"storage: up to {human(whole.peak)} while running, {human(whole.kept)} kept when done{free}")
    return lines


def storage_problem(cfg: StudyConfig, pending: list[Stage], storage_folder: str) -> str | None:
    """Why a local storage cannot take the checkpoints of the stages still to run (None: it can)."""
    need = study_storage(cfg, pending).peak
    free = free_bytes(storage_folder)
    if need <= free:
        return None
    return (f"storage: {storage_folder} has {human(free)} free; the {len(pending)} stages still to run need up to "
            f"{human(need)} for their checkpoints (`ray-xt plan` shows the breakdown). Free space there, give "
            f"--storage a larger folder or an object store URI (s3://, gs://), or run fewer stages (--seeds)")


def pending_storage_problem(cfg: StudyConfig) -> str | None:
    """``storage_problem`` for the stages of the study not finished yet (its records read from its storage)."""
    from ray_xt.stages import expand
    from ray_xt.study.layout import stage_store

    store = stage_store(cfg)
    return storage_problem(cfg, [s for s in expand(cfg) if store.get(s) is None], cfg.storage)
