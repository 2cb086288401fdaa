"""A task's trial settings at a scale, every per-scale default filled in: the one place a trial's settings come
from (the stage's sweep settings and the trial's TrialSpec are both read off a ResolvedTrial)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class ResolvedTrial:
    """``trial:`` with a task's overrides applied and the scale's defaults filled in: nothing left unresolved
    (the three optional values mean "all examples" and "the scale's default layer")."""

    epochs: float
    batch_size: int  # the effective (global) batch
    max_seq_length: int
    doc_stride: int
    retrieval_layer: int | None  # None: 7/12 of the depth (XTREME's choice for 12 layers)
    max_train_examples: int | None  # None: all
    max_eval_examples: int | None  # None: all
    evals_per_epoch: int
    grad_accum: int
    warmup_ratio: float
    weight_decay: float
    zero_stage: int
    offload_optimizer: bool
    bf16: Literal["auto", True, False]
    cpus: float  # per trial process (per worker of a worker group)
    gpus: float
    workers: int
    placement: Literal["STRICT_PACK", "PACK", "SPREAD"]
    freeze_embeddings: bool
    group_by_length: bool

    def as_dict(self) -> dict:
        return asdict(self)
