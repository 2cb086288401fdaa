"""What every task family provides: read -> featurise -> model/head -> batches -> predict -> metric -> submission.

A family turns a task's files into Arrow feature columns (tokenised once per study by
``ray_xt.data.FeatureCache``), builds the transformers model with the family's head,
makes training batches for the lean DeepSpeed loop in ``ray_xt.loop``, and evaluates
a model on one language: the main score (what Tune optimises and the reports
compare), all metrics, and the predictions in XTREME's submission format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ray_xt.tasks.registry import TaskSpec


class DataError(FileNotFoundError):
    """A task file is missing or malformed; the message names task, path and the fix."""


@dataclass
class Evaluation:
    score: float  # the task's main metric as a fraction (accuracy, F1/100)
    metrics: dict[str, float] = field(default_factory=dict)  # in %, as XTREME reports them
    submission: list[str] | dict | None = None  # lines of test-<lang>.tsv, or {id: answer} of test-<lang>.json


def require(root: Path, task: TaskSpec, split: str, lang: str, hint: str | None = None) -> Path:
    path = Path(root) / task.path(split, lang)
    if not path.is_file():
        how = hint or (
            "run google-research/xtreme's scripts/download_data.sh into data.root"
            if task.role == "target"
            else f"put the task's files there ({FORMAT_HINTS[task.family]})"
        )
        raise DataError(f"task {task.name!r}, split {split!r}, language {lang!r}: expected file {path} ({how})")
    return path


FORMAT_HINTS = {
    "pair_classification": "sentence1<TAB>sentence2<TAB>label TSV",
    "multiple_choice": "JSON lines {id, context, question, choices, label}",
    "tagging": "token<TAB>tag lines, a blank line between sentences",
    "span_qa": "SQuAD v1.1 JSON",
    "retrieval": "Tatoeba / BUCC files as xtreme's download_data.sh leaves them",
}


class Family:
    """Base class: subclasses fill in the task-specific steps."""

    name = ""
    scored = True  # False: trained alongside a task (the MLM companion), never evaluated
    parallel = True  # a task's files in several languages render the same examples (translations)
    # Logits from the first token's last-layer state only (``families.first_token``), for heads that read
    # nothing else; None: training and evaluation run the whole model.
    first_token_logits: Callable[..., Any] | None = None
    # outputs of a head whose size is not a label count (span QA: start and end logits); an upstream checkpoint's
    # num_labels (3 after an NLI intermediate task) must not size it
    head_outputs: int | None = None

    # ---- data
    def read(self, root: Path, task: TaskSpec, split: str, lang: str) -> list[dict]:
        raise NotImplementedError

    def featurize(self, examples: list[dict], tokenizer, max_len: int, stride: int, labels: list[str]) -> dict:
        raise NotImplementedError

    def label_space(self, root: Path, task: TaskSpec) -> list[str]:
        return list(task.labels)

    # ---- model
    def auto_class(self):
        raise NotImplementedError

    def load_model(self, path: str, num_labels: int, fresh_head: bool, labels: list[str] | None = None):
        """The family's model from a pretrained or fine-tuned checkpoint.

        ``fresh_head``: keep only the encoder (as jiant's partial load does); an intermediate task's head
        never leaks into the target task, whatever the two families are.
        """
        quiet_transformers()
        kwargs: dict[str, Any] = {"ignore_mismatched_sizes": True}
        if num_labels or self.head_outputs:
            kwargs["num_labels"] = num_labels or self.head_outputs
        if labels:
            kwargs["id2label"] = dict(enumerate(labels))
            kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        model = self.auto_class().from_pretrained(path, **kwargs)
        if fresh_head:
            init_head(model)
        return model

    # ---- training and evaluation
    def batch(self, features, indices: list[int], pad_id: int) -> dict:
        raise NotImplementedError

    def evaluate(self, model, features, examples: list[dict], pad_id: int, task: TaskSpec, lang: str,
                 batch_size: int = 64) -> Evaluation:
        raise NotImplementedError


def init_head(model) -> None:
    """Every parameter outside the encoder drawn afresh, as XLM-R initialises a new head: weights normal(0,
    initializer_range), biases 0, LayerNorms 1 and 0. Parameters the head shares with the encoder (an MLM decoder
    tied to the word embeddings) are kept. Written with torch.nn.init: transformers' own initialiser skips every
    weight ``from_pretrained`` loaded, so an upstream checkpoint's head of the same shape (QQP's 2 labels before
    PAWS-X's, SQuAD's span head before XQuAD's) would otherwise carry over into the target task."""
    import torch

    prefix = model.base_model_prefix
    shared = {id(p) for p in getattr(model, prefix).parameters()}
    std = model.config.initializer_range
    with torch.no_grad():
        for name, module in model.named_modules():
            if name == prefix or name.startswith(prefix + "."):
                continue
            norm = isinstance(module, torch.nn.LayerNorm)
            for param_name, param in module.named_parameters(recurse=False):
                if id(param) in shared:
                    continue
                if param_name == "weight":
                    torch.nn.init.ones_(param) if norm else torch.nn.init.normal_(param, mean=0.0, std=std)
                else:
                    torch.nn.init.zeros_(param)


def quiet_transformers() -> None:
    """Loading an encoder under a new head is expected here: no per-load report of missing/unused weights."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def pad(rows: list[list[int]], value: int):
    """A batch of id lists padded to its own longest member (no padding to max_len).

    Filled in NumPy and handed to torch without a copy: a torch.tensor per row cost more than the forward
    pass of a micro model (bench/train_throughput.py).
    """
    import torch

    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def padded_inputs(rows: list[list[int]], pad_id: int, device=None) -> dict:
    """Model inputs of a batch: padded ids and their attention mask (optionally on ``device``)."""
    ids = pad(rows, pad_id)
    if device is not None:
        ids = ids.to(device)
    return {"input_ids": ids, "attention_mask": (ids != pad_id).long()}


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by length, so evaluation batches carry little padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class eval_mode:  # noqa: N801 - used as a function-like context manager
    """model.eval() and inference mode for a block, restoring training mode after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        import torch

        self.was_training = self.model.training
        self.model.eval()
        self._inference = torch.inference_mode()
        self._inference.__enter__()
        return self.model

    def __exit__(self, *exc):
        self._inference.__exit__(*exc)
        if self.was_training:
            self.model.train()
