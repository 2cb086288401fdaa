"""Pair classification (XNLI, PAWS-X, MNLI, ANLI, QQP): sentence pair -> label, accuracy."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ray_xt.families.base import (
    DataError,
    Evaluation,
    Family,
    eval_mode,
    length_sorted_batches,
    padded_inputs,
    require,
)
from ray_xt.families.first_token import classification_logits
from ray_xt.tasks.registry import TaskSpec


def read_pair_file(path: Path, task: TaskSpec) -> list[dict]:
    """XTREME pair TSV: sentence1, sentence2[, label] (test files ship without labels), no header."""
    rows = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if len(row) < 2:
                raise DataError(f"{path}:{n}: expected sentence1<TAB>sentence2[<TAB>label], got {len(row)} field(s)")
            label = row[2] if len(row) > 2 else None
            if label is not None and label not in task.labels:
                raise DataError(f"{path}:{n}: label {label!r} is not one of {list(task.labels)}")
            rows.append({"sentence1": row[0], "sentence2": row[1], "label": label})
    return rows


class PairClassification(Family):
    name = "pair_classification"
    first_token_logits = staticmethod(classification_logits)

    def read(self, root, task, split, lang):
        return read_pair_file(require(root, task, split, lang), task)

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        ids = {label: i for i, label in enumerate(labels)}
        enc = tokenizer([e["sentence1"] for e in examples], [e["sentence2"] for e in examples], truncation=True,
                        max_length=max_len)
        return {"input_ids": enc["input_ids"], "label": [ids.get(e["label"], -1) for e in examples]}

    def auto_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def batch(self, features, indices, pad_id):
        import torch

        return {**padded_inputs([features["input_ids"][i] for i in indices], pad_id),
                "labels": torch.tensor([features["label"][i] for i in indices])}

    def predict(self, model, input_ids: list[list[int]], pad_id: int, batch_size: int = 64,
                logits=classification_logits) -> np.ndarray:
        """Predicted label ids; ``logits(model, input_ids=, attention_mask=)`` (the benchmark passes the full forward)."""
        device = next(model.parameters()).device
        preds = np.empty(len(input_ids), dtype=np.int64)
        with eval_mode(model):
            for idx in length_sorted_batches([len(x) for x in input_ids], batch_size):
                inputs = padded_inputs([input_ids[i] for i in idx], pad_id, device)
                preds[idx] = logits(model, **inputs).argmax(-1).cpu().numpy()
        return preds

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=64):
        preds = self.predict(model, features["input_ids"], pad_id, batch_size)
        gold = np.asarray(features["label"])
        labeled = gold >= 0
        acc = float((preds[labeled] == gold[labeled]).mean()) if labeled.any() else float("nan")
        names = model.config.id2label
        return Evaluation(acc, {"accuracy": 100 * acc}, [str(names[int(p)]) for p in preds])
