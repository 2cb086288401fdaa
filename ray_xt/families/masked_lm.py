"""Masked language modelling on plain text: the companion of an intermediate task in the `mlm` condition
(Phang et al. 2020's continued multilingual MLM during intermediate training).

Text lines are tokenised and masked once, when features are made (BERT's static masking: 15% of the real
tokens, of which 80% become <mask>, 10% a random token, 10% stay), with a seed, so a study's stages see the
same masks; the loss is the model's own MLM loss on the masked positions. It is trained, never scored: the
stage selects its model on the intermediate task's dev score.
"""

from __future__ import annotations

import random

from ray_xt.families.base import Evaluation, Family, padded_inputs, quiet_transformers, require

MASK_RATE = 0.15
MASK_SEED = 17
IGNORE = -100


class MaskedLM(Family):
    name = "masked_lm"
    scored = False
    parallel = False

    def read(self, root, task, split, lang):
        lines = require(root, task, split, lang).read_text(encoding="utf-8").splitlines()
        return [{"text": line} for line in lines if line.strip()]

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        rng = random.Random(MASK_SEED)
        special = set(tokenizer.all_special_ids)
        vocab = len(tokenizer)
        ids, targets = [], []
        for row in tokenizer([e["text"] for e in examples], truncation=True, max_length=max_len)["input_ids"]:
            masked, target = list(row), [IGNORE] * len(row)
            for i, token in enumerate(row):
                if token in special or rng.random() >= MASK_RATE:
                    continue
                target[i] = token
                draw = rng.random()
                masked[i] = tokenizer.mask_token_id if draw < 0.8 else (rng.randrange(vocab) if draw < 0.9 else token)
            ids.append(masked)
            targets.append(target)
        return {"input_ids": ids, "labels": targets}

    def auto_class(self):
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM

    def load_model(self, path: str, num_labels: int, fresh_head: bool, labels: list[str] | None = None):
        """The checkpoint's own LM head where it has one (a pretrained XLM-R does; an intermediate checkpoint is
        an encoder, and its head starts new, tied to the word embeddings)."""
        quiet_transformers()
        return self.auto_class().from_pretrained(path)

    def batch(self, features, indices, pad_id):
        import torch

        inputs = padded_inputs([features["input_ids"][i] for i in indices], pad_id)
        width = inputs["input_ids"].shape[1]
        inputs["labels"] = torch.tensor([features["labels"][i] + [IGNORE] * (width - len(features["labels"][i]))
                                         for i in indices])
        return inputs

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=64):
        return Evaluation(float("nan"))
