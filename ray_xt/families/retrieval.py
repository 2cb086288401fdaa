"""Sentence retrieval (Tatoeba, BUCC 2018) straight from an encoder, no training: XTREME's protocol.

Sentences are embedded by mean-pooling the hidden states of one layer (XTREME uses
a middle layer; ``layer`` configurable, default 7/12 of the depth) over real tokens.
Tatoeba: each source sentence's nearest English sentence by cosine, accuracy.
BUCC: each source sentence's k=4 nearest English sentences are its candidates, scored with the
ratio margin of Artetxe & Schwenk (2019, k nearest neighbours each way), as XTREME's
``third_party/utils_retrieve.py`` (LASER's mining) does; a source's best candidate is kept above a
threshold chosen on the dev split to maximise F1 and applied unchanged to test. The neighbours are
found block by block (``nearest_neighbours``): BUCC's real sides hold up to ~560,000 sentences,
whose dense similarity matrix (~1 TB for ru-en) no machine holds.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
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
        src = [examples[i] for i in src_i]
        en = [examples[i] for i in en_i]
        if task.name == "tatoeba":
            neighbours = nearest_neighbours(emb[src_i], emb[en_i], 1)
            pred = neighbours.src_index[:, 0]
            acc = float(np.mean([en[p]["id"] == s["gold"] for p, s in zip(pred, src)]))
            return Evaluation(acc, {"accuracy": 100 * acc}, [en[p]["id"] for p in pred])
        return self._bucc(nearest_neighbours(emb[src_i], emb[en_i], MARGIN_K), src, en)

    def _bucc(self, neighbours: Neighbours, src: list[dict], en: list[dict]) -> Evaluation:
        best, score = neighbours.best_by_margin()
        candidates = sorted(((float(m), i, int(j)) for i, (j, m) in enumerate(zip(best, score))), reverse=True)
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
    if not isinstance(stack, torch.nn.ModuleList) or not only_layers or not 0 < layer <= len(stack):
        yield False
        return
    encoder.encoder.layer = stack[:layer]
    try:
        yield True
    finally:
        encoder.encoder.layer = stack


@dataclass
class Neighbours:
    """Each source sentence's k nearest English sentences (similarity and index, best first), and each English
    sentence's mean similarity to its k nearest source sentences."""

    src_sim: np.ndarray  # (n, k)
    src_index: np.ndarray  # (n, k)
    en_mean: np.ndarray  # (m,)

    def best_by_margin(self) -> tuple[np.ndarray, np.ndarray]:
        """Each source sentence's candidate of highest ratio margin, cos(x, y) / ((knn(x) + knn(y)) / 2), and
        that margin."""
        src_mean = self.src_sim.mean(1, keepdims=True)
        margin = self.src_sim / ((src_mean + self.en_mean[self.src_index]) / 2)
        pick = margin.argmax(1)
        rows = np.arange(len(pick))
        return self.src_index[rows, pick], margin[rows, pick]


BLOCK_ROWS, BLOCK_COLS = 4096, 16384  # one block of similarities: 256 MB of float32


def nearest_neighbours(src: np.ndarray, en: np.ndarray, k: int, rows: int = BLOCK_ROWS,
                       cols: int = BLOCK_COLS) -> Neighbours:
    """k nearest neighbours both ways by inner product (cosine on normalised embeddings), one ``rows`` x ``cols``
    block of similarities at a time: memory O(block + (n + m) k), never the n x m matrix."""
    n, m = len(src), len(en)
    k_src, k_en = min(k, m), min(k, n)
    src_sim = np.full((n, k_src), -np.inf, dtype=np.float32)
    src_index = np.zeros((n, k_src), dtype=np.int64)
    en_top = np.full((k_en, m), -np.inf, dtype=np.float32)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        for j0 in range(0, m, cols):
            j1 = min(j0 + cols, m)
            block = (src[i0:i1] @ en[j0:j1].T).astype(np.float32, copy=False)
            # rows: this block's best k_src per source sentence, merged with the best so far
            kk = min(k_src, j1 - j0)
            part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
            sims = np.concatenate([src_sim[i0:i1], np.take_along_axis(block, part, 1)], axis=1)
            index = np.concatenate([src_index[i0:i1], part + j0], axis=1)
            keep = np.argsort(-sims, axis=1, kind="stable")[:, :k_src]
            src_sim[i0:i1], src_index[i0:i1] = np.take_along_axis(sims, keep, 1), np.take_along_axis(index, keep, 1)
            # columns: the best k_en source sentences per English sentence
            kk = min(k_en, i1 - i0)
            column_best = -np.partition(-block, kk - 1, axis=0)[:kk]
            merged = np.concatenate([en_top[:, j0:j1], column_best], axis=0)
            en_top[:, j0:j1] = -np.partition(-merged, k_en - 1, axis=0)[:k_en]
    return Neighbours(src_sim, src_index, en_top.mean(0))


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
