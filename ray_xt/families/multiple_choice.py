"""Multiple choice (HellaSwag, CosmosQA, CommonsenseQA, SocialIQA): one score per (context+question, choice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ray_xt.families.base import DataError, Evaluation, Family, eval_mode, pad, require
from ray_xt.families.first_token import multiple_choice_logits


def read_choice_file(path: Path, num_choices: int = 0) -> list[dict]:
    """JSON lines {id, context, question, choices, label} (ray_xt's common form; the hub loaders convert to it)."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            choices, label = row["choices"], row.get("label")
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path}:{n}: expected a JSON object with id, context, question, choices, label ({err})") from None
        if num_choices and len(choices) != num_choices:
            raise DataError(f"{path}:{n}: {len(choices)} choices, the task has {num_choices}")
        if label is not None and not 0 <= int(label) < len(choices):
            raise DataError(f"{path}:{n}: label {label} outside the {len(choices)} choices")
        rows.append({"id": str(row.get("id", n)), "context": row.get("context", ""), "question": row.get("question", ""),
                     "choices": list(choices), "label": None if label is None else int(label)})
    return rows


class MultipleChoice(Family):
    name = "multiple_choice"
    first_token_logits = staticmethod(multiple_choice_logits)

    def read(self, root, task, split, lang):
        return read_choice_file(require(root, task, split, lang), task.num_choices)

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        firsts, seconds = [], []
        for e in examples:
            prompt = " ".join(x for x in (e["context"], e["question"]) if x)
            firsts += [prompt] * len(e["choices"])
            seconds += e["choices"]
        # truncate the context, never the choice: the choice is what is being scored
        enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_len)["input_ids"]
        grouped, at = [], 0
        for e in examples:
            grouped.append(enc[at : at + len(e["choices"])])
            at += len(e["choices"])
        return {"input_ids": grouped, "label": [-1 if e["label"] is None else e["label"] for e in examples]}

    def auto_class(self):
        from transformers import AutoModelForMultipleChoice

        return AutoModelForMultipleChoice

    def _inputs(self, groups: list[list[list[int]]], pad_id: int) -> dict:
        n_choices = len(groups[0])
        flat = pad([ids for g in groups for ids in g], pad_id)
        ids = flat.view(len(groups), n_choices, -1)
        return {"input_ids": ids, "attention_mask": (ids != pad_id).long()}

    def batch(self, features, indices, pad_id):
        import torch

        batch = self._inputs([features["input_ids"][i] for i in indices], pad_id)
        batch["labels"] = torch.tensor([features["label"][i] for i in indices])
        return batch

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=64):
        device = next(model.parameters()).device
        groups = features["input_ids"]
        per_batch = max(1, batch_size // max(1, len(groups[0]) if groups else 1))
        preds = np.empty(len(groups), dtype=np.int64)
        order = sorted(range(len(groups)), key=lambda i: max(len(x) for x in groups[i]))
        with eval_mode(model):
            for start in range(0, len(order), per_batch):
                idx = order[start : start + per_batch]
                inputs = {k: v.to(device) for k, v in self._inputs([groups[i] for i in idx], pad_id).items()}
                preds[idx] = multiple_choice_logits(model, **inputs).argmax(-1).cpu().numpy()
        gold = np.asarray(features["label"])
        labeled = gold >= 0
        acc = float((preds[labeled] == gold[labeled]).mean()) if labeled.any() else float("nan")
        return Evaluation(acc, {"accuracy": 100 * acc}, [str(int(p)) for p in preds])
