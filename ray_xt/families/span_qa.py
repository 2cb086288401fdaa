"""Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): doc-stride windows, n-best span extraction, EM/F1.

Featurisation follows the standard recipe: the context is cut into windows of
``max_len`` tokens overlapping by ``stride`` (question first, context truncated
only), with offset mappings back into the context; a window without the answer
is trained to point at <s>.  Prediction takes the n best start and end logits of
every window, keeps valid spans (inside the context, end >= start, at most
``MAX_ANSWER_TOKENS``) and answers with the best-scoring span over the windows.
"""

from __future__ import annotations

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
from ray_xt.formats import FormatError, read_squad

N_BEST = 20
MAX_ANSWER_TOKENS = 30


class SpanQA(Family):
    name = "span_qa"
    head_outputs = 2  # start and end logits

    def read(self, root, task, split, lang):
        try:
            examples = read_squad(require(root, task, split, lang))
        except FormatError as err:
            raise DataError(str(err)) from None
        return [{"id": e.id, "context": e.context, "question": e.question, "answers": e.answers} for e in examples]

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        if not getattr(tokenizer, "is_fast", False):
            raise DataError(f"span QA needs a fast tokenizer (offset mappings); {type(tokenizer).__name__} is not")
        questions = [e["question"].lstrip() for e in examples]
        longest_question = max((len(q) for q in tokenizer(questions, add_special_tokens=False)["input_ids"]), default=0)
        if longest_question > max_len // 2:
            raise DataError(f"a question has {longest_question} tokens, more than half of max_seq_length={max_len}: "
                            "raise trial.max_seq_length")
        room = max_len - longest_question - 4  # <s> q </s></s> ctx </s>
        if stride >= room:
            raise DataError(f"trial.doc_stride={stride} must be smaller than the context room of a window "
                            f"({room} tokens at max_seq_length={max_len}); lower doc_stride or raise max_seq_length")
        enc = tokenizer(
            questions, [e["context"] for e in examples], truncation="only_second", max_length=max_len, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True,
        )
        columns: dict[str, list] = {"input_ids": [], "start": [], "end": [], "example": [], "offsets": []}
        for f, ids in enumerate(enc["input_ids"]):
            ex_index = enc["overflow_to_sample_mapping"][f]
            seq = enc.sequence_ids(f)
            offsets = [list(o) if s == 1 else [-1, -1] for o, s in zip(enc["offset_mapping"][f], seq)]
            start = end = 0  # <s>: "no answer in this window"
            answers = examples[ex_index]["answers"]
            if answers:
                a_start = answers[0]["answer_start"]
                a_end = a_start + len(answers[0]["text"])
                ctx = [i for i, s in enumerate(seq) if s == 1]
                if ctx and offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    start = next(i for i in ctx if offsets[i][1] > a_start)
                    end = next(i for i in reversed(ctx) if offsets[i][0] < a_end)
            columns["input_ids"].append(ids)
            columns["start"].append(start)
            columns["end"].append(end)
            columns["example"].append(ex_index)
            columns["offsets"].append(offsets)
        return columns

    def auto_class(self):
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def batch(self, features, indices, pad_id):
        import torch

        return {**padded_inputs([features["input_ids"][i] for i in indices], pad_id),
                "start_positions": torch.tensor([features["start"][i] for i in indices]),
                "end_positions": torch.tensor([features["end"][i] for i in indices])}

    def predict_answers(self, model, features, examples, pad_id, batch_size=64) -> dict[str, str]:
        device = next(model.parameters()).device
        best: dict[int, tuple[float, str]] = {}
        all_ids = features["input_ids"]
        with eval_mode(model):
            for idx in length_sorted_batches([len(x) for x in all_ids], batch_size):
                out = model(**padded_inputs([all_ids[i] for i in idx], pad_id, device))
                starts, ends = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
                for row, f in enumerate(idx):
                    ex = features["example"][f]
                    span = best_span(starts[row], ends[row], features["offsets"][f])
                    if span and (ex not in best or span[0] > best[ex][0]):
                        best[ex] = (span[0], examples[ex]["context"][span[1] : span[2]])
        return {e["id"]: best.get(i, (0.0, ""))[1] for i, e in enumerate(examples)}

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=64):
        from ray_xt.score import qa_em_f1

        answers = self.predict_answers(model, features, examples, pad_id, batch_size)
        labeled = [e for e in examples if e["answers"]]
        metrics = {}
        if labeled:
            dataset = [{"paragraphs": [{"context": e["context"], "qas": [
                {"id": e["id"], "question": e["question"], "answers": e["answers"]}]} for e in labeled]}]
            metrics = qa_em_f1(dataset, answers, lang if task.name == "mlqa" else None)
        return Evaluation(metrics.get("f1", float("nan")) / 100, metrics, answers)


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: list[list[int]]):
    """(score, char_start, char_end) of the best valid span of one window, or None."""
    n = min(len(offsets), len(start_logits))
    starts = np.argsort(start_logits[:n])[::-1][:N_BEST]
    ends = np.argsort(end_logits[:n])[::-1][:N_BEST]
    best = None
    for s in starts:
        if offsets[s][0] < 0:
            continue
        for e in ends:
            if offsets[e][0] < 0 or e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                continue
            score = float(start_logits[s] + end_logits[e])
            if best is None or score > best[0]:
                best = (score, offsets[s][0], offsets[e][1])
    return best
