"""Token tagging (UD-POS, PAN-X NER, CCG supertags): a label per word on its first subword, seqeval F1.

Sentences longer than max_len are split at word boundaries into several features
(no word is dropped, so every word gets a prediction in the submission).
"""

from __future__ import annotations

from pathlib import Path

from ray_xt.families.base import (
    DataError,
    Evaluation,
    Family,
    eval_mode,
    length_sorted_batches,
    pad,
    padded_inputs,
    require,
)
from ray_xt.formats import FormatError, read_conll

IGNORE = -100


def read_tagged_file(path: Path) -> list[dict]:
    try:
        sentences = read_conll(path)
    except FormatError as err:
        raise DataError(str(err)) from None
    tags: list[list[str] | None] = list(sentences.tags) if sentences.tags else [None] * len(sentences.tokens)
    return [{"tokens": toks, "tags": t} for toks, t in zip(sentences.tokens, tags)]


def _chunks(word_lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """[start, end) word ranges whose subword counts fit ``budget``."""
    out, start, used = [], 0, 0
    for i, n in enumerate(word_lengths):
        if used + n > budget and i > start:
            out.append((start, i))
            start, used = i, 0
        used += n
    out.append((start, len(word_lengths)))
    return out


class Tagging(Family):
    name = "tagging"

    def read(self, root, task, split, lang):
        return read_tagged_file(require(root, task, split, lang))

    def label_space(self, root, task):
        """The registry's tag set, or the tags of the English training file (CCG supertags)."""
        if task.labels:
            return list(task.labels)
        rows = self.read(root, task, "train", "en")
        return sorted({t for r in rows for t in (r["tags"] or [])})

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        label_ids = {label: i for i, label in enumerate(labels)}
        columns: dict[str, list] = {"input_ids": [], "labels": [], "example": [], "first_word": [], "word_positions": []}
        budget = max_len - 2
        for ex_index, ex in enumerate(examples):
            pieces = tokenizer(ex["tokens"], add_special_tokens=False)["input_ids"]
            lengths = [min(len(p), budget) for p in pieces]  # an over-long single word keeps its first pieces
            for start, end in _chunks(lengths, budget):
                ids, labs, positions = [tokenizer.bos_token_id], [IGNORE], []
                for w in range(start, end):
                    piece = pieces[w][:budget]
                    positions.append(len(ids) if piece else -1)  # a word with no pieces gets no prediction
                    tag = ex["tags"][w] if ex["tags"] else None
                    labs += ([label_ids.get(tag, IGNORE)] + [IGNORE] * (len(piece) - 1)) if piece else []
                    ids += piece
                ids.append(tokenizer.eos_token_id)
                labs.append(IGNORE)
                columns["input_ids"].append(ids)
                columns["labels"].append(labs)
                columns["example"].append(ex_index)
                columns["first_word"].append(start)
                columns["word_positions"].append(positions)
        return columns

    def auto_class(self):
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def batch(self, features, indices, pad_id):
        return {**padded_inputs([features["input_ids"][i] for i in indices], pad_id),
                "labels": pad([features["labels"][i] for i in indices], IGNORE)}

    def predict_words(self, model, features, examples, pad_id, batch_size=64) -> list[list[str]]:
        names = model.config.id2label
        fallback = "O" if "O" in names.values() else names[0]
        out = [[fallback] * len(ex["tokens"]) for ex in examples]
        device = next(model.parameters()).device
        all_ids = features["input_ids"]
        with eval_mode(model):
            for idx in length_sorted_batches([len(x) for x in all_ids], batch_size):
                best = model(**padded_inputs([all_ids[i] for i in idx], pad_id, device)).logits.argmax(-1).cpu().numpy()
                for row, i in enumerate(idx):
                    ex, first = features["example"][i], features["first_word"][i]
                    for offset, pos in enumerate(features["word_positions"][i]):
                        if pos >= 0:
                            out[ex][first + offset] = names[int(best[row, pos])]
        return out

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=64):
        from ray_xt.score import tagging_f1

        predicted = self.predict_words(model, features, examples, pad_id, batch_size)
        labeled = [i for i, ex in enumerate(examples) if ex["tags"]]
        metrics = tagging_f1([examples[i]["tags"] for i in labeled], [predicted[i] for i in labeled]) if labeled else {}
        lines: list[str] = []
        for tags in predicted:
            lines += tags + [""]
        return Evaluation(metrics.get("f1", float("nan")) / 100, metrics, lines)

