"""The model and its DeepSpeed engine: task parts and the multi-task model, the engine's config and optimizer,
one accumulated optimiser step, checkpoints written and resumed, and the memory a trial gives back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray_xt.loop.contract import Hyper, PhaseClock, Session, TrialSpec
from ray_xt.loop.sampling import Schedule

if TYPE_CHECKING:
    from ray_xt.families.base import Family
    from ray_xt.tasks.registry import TaskSpec


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


@dataclass
class TaskPart:
    name: str
    spec: TaskSpec
    family: Family
    model: Any  # the family's transformers model
    train: dict
    dev: dict
    dev_examples: list


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


def _write_checkpoint(path: Path, engine, tokenizer, spec: TrialSpec, hyper: Hyper, step: int, metrics: dict,
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
    resolved = {"searched": hyper.as_config(), "fixed": asdict(spec)}
    (path / "trial_config.json").write_text(json.dumps(resolved, indent=1, default=str) + "\n")
    (path / "git_revision.txt").write_text(spec.git_revision + "\n")
