"""Sentence retrieval (Tatoeba, BUCC 2018) straight from an encoder, no training: XTREME's protocol.

Sentences are embedded by mean-pooling the hidden states of one layer (XTREME uses
a middle layer; ``layer`` configurable, default 7/12 of the depth) over real tokens.
Tatoeba: each source sentence's nearest English sentence by cosine, accuracy.
BUCC: candidates scored with the ratio margin of Artetxe & Schwenk (2019, k=4 nearest
neighbours each way), a pair kept above a threshold chosen on the dev split to maximise
F1 (as XTREME's BUCC evaluation does) and applied unchanged to test.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ray_xt.families.base import DataError, Evaluation, Family, eval_mode, length_sorted_batches, pad
from ray_xt.formats import FormatError, read_bucc, read_tatoeba
from ray_xt.tasks.registry import TATOEBA_ISO3

MARGIN_K = 4


def default_layer(num_layers: int) -> int:
    return max(1, round(num_layers * 7 / 12))


class Retrieval(Family):
    name = "retrieval"

    def __init__(self, layer: int | None = None, threshold: float | None = None):
        self.layer = layer
        self.threshold = threshold  # BUCC: None = choose on this split (dev); else apply it (test)

    def read(self, root, task, split, lang):
        directory = Path(root) / Path(task.path(split, lang)).parent
        try:
            if task.name == "tatoeba":
                src, eng = read_tatoeba(directory, TATOEBA_ISO3.get(lang, lang), lang)
                return ([{"side": "src", "id": str(i), "text": s, "gold": str(i)} for i, s in enumerate(src)]
                        + [{"side": "en", "id": str(i), "text": s, "gold": ""} for i, s in enumerate(eng)])
            bucc = read_bucc(directory, lang, split)
        except FormatError as err:
            raise DataError(f"{err} (run google-research/xtreme's scripts/download_data.sh into data.root)") from None
        gold = dict(bucc.gold)
        return ([{"side": "src", "id": k, "text": v, "gold": gold.get(k, "")} for k, v in bucc.source.items()]
                + [{"side": "en", "id": k, "text": v, "gold": ""} for k, v in bucc.english.items()])

    def featurize(self, examples, tokenizer, max_len, stride, labels):
        enc = tokenizer([e["text"] for e in examples], truncation=True, max_length=max_len)["input_ids"]
        return {"input_ids": enc, "side": [0 if e["side"] == "src" else 1 for e in examples]}

    def auto_class(self):
        from transformers import AutoModel

        return AutoModel

    def embed(self, model, input_ids: list[list[int]], pad_id: int, batch_size: int = 128) -> np.ndarray:
        """Mean-pooled, L2-normalised hidden states of ``self.layer`` (any head's encoder works)."""
        encoder = getattr(model, model.base_model_prefix, model)
        layer = self.layer or default_layer(encoder.config.num_hidden_layers)
        if not 0 < layer <= encoder.config.num_hidden_layers:
            raise ValueError(f"retrieval layer {layer} outside 1..{encoder.config.num_hidden_layers}")
        device = next(encoder.parameters()).device
        out = np.zeros((len(input_ids), encoder.config.hidden_size), dtype=np.float32)
        with eval_mode(encoder), first_layers_only(encoder, layer) as truncated:
            for idx in length_sorted_batches([len(x) for x in input_ids], batch_size):
                ids = pad([input_ids[i] for i in idx], pad_id).to(device)
                mask = (ids != pad_id).unsqueeze(-1).float()
                output = encoder(input_ids=ids, attention_mask=mask.squeeze(-1).long(),
                                 output_hidden_states=not truncated)
                hidden = output.last_hidden_state if truncated else output.hidden_states[layer]
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = pooled.float().cpu().numpy()
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)

    def evaluate(self, model, features, examples, pad_id, task, lang, batch_size=128):
        return self.score(self.embed(model, features["input_ids"], pad_id, batch_size), features, examples, task)

    def score(self, emb: np.ndarray, features, examples, task) -> Evaluation:
        """The task's metrics from the embeddings of ``features``' sentences (rows in the same order)."""
        side = np.asarray(features["side"])
        src_i, en_i = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
        sims = emb[src_i] @ emb[en_i].T
        src = [examples[i] for i in src_i]
        en = [examples[i] for i in en_i]
        if task.name == "tatoeba":
            pred = sims.argmax(1)
            acc = float(np.mean([en[p]["id"] == s["gold"] for p, s in zip(pred, src)]))
            return Evaluation(acc, {"accuracy": 100 * acc}, [en[p]["id"] for p in pred])
        return self._bucc(sims, src, en)

    def _bucc(self, sims: np.ndarray, src: list[dict], en: list[dict]) -> Evaluation:
        margin = ratio_margin(sims, MARGIN_K)
        best = margin.argmax(1)
        candidates = sorted(((float(margin[i, j]), i, int(j)) for i, j in enumerate(best)), reverse=True)
        gold = {(s["id"], s["gold"]) for s in src if s["gold"]}
        threshold = self.threshold if self.threshold is not None else best_threshold(candidates, src, en, gold)
        pairs = [(src[i]["id"], en[j]["id"]) for score, i, j in candidates if score >= threshold]
        metrics = pair_f1(set(pairs), gold)
        metrics["threshold"] = threshold
        return Evaluation(metrics["f1"] / 100, metrics, [f"{a}\t{b}" for a, b in pairs])


@contextmanager
def first_layers_only(encoder, layer: int):
    """Yields True while the encoder runs only its first ``layer`` layers, so that its last hidden state is
    ``hidden_states[layer]`` of the whole encoder: the layers above never change that state, and retrieval
    skips computing them (half of a micro-m's layers, 10 of XLM-R large's 24).

    Only for a BERT-style ``encoder.layer`` list with nothing after it (XLM-R XL's encoder ends in a LayerNorm,
    which the last hidden state would include): else yields False and the encoder runs whole. The full states
    are then read from ``hidden_states`` — never both on one model, because transformers hooks the layers that
    record ``hidden_states`` on the first forward that asks for them."""
    import torch

    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    only_layers = isinstance(stack, torch.nn.ModuleList) and all(
        name.startswith("layer.") for name, _ in encoder.encoder.named_parameters())
    if not only_layers or not 0 < layer <= len(stack):
        yield False
        return
    encoder.encoder.layer = stack[:layer]
    try:
        yield True
    finally:
        encoder.encoder.layer = stack


def ratio_margin(sims: np.ndarray, k: int) -> np.ndarray:
    """cos(x, y) / mean of the average similarity of x and of y to their k nearest neighbours."""
    k_src, k_en = min(k, sims.shape[1]), min(k, sims.shape[0])
    knn_src = np.sort(sims, axis=1)[:, -k_src:].mean(1)  # each source sentence's k best English neighbours
    knn_en = np.sort(sims, axis=0)[-k_en:, :].mean(0)
    return sims / ((knn_src[:, None] + knn_en[None, :]) / 2)


def pair_f1(predicted: set, gold: set) -> dict:
    correct = len(predicted & gold)
    if not correct:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    p, r = correct / len(predicted), correct / len(gold)
    return {"f1": 100 * 2 * p * r / (p + r), "precision": 100 * p, "recall": 100 * r}


def best_threshold(candidates: list[tuple[float, int, int]], src, en, gold: set) -> float:
    """The margin threshold maximising F1 over candidates sorted by score (descending)."""
    best_f1, best_t, correct = -1.0, float("inf"), 0
    for n, (score, i, j) in enumerate(candidates, 1):
        correct += (src[i]["id"], en[j]["id"]) in gold
        f1 = 2 * correct / (n + len(gold)) if gold else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, score
    return best_t
