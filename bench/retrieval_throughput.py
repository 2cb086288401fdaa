"""Retrieval embedding throughput: ray_xt's first-layers-only encoder vs the whole encoder's hidden states.

    .venv/bin/python bench/retrieval_throughput.py [--scale micro-m] [--repeats 5] [--smoke]

Every sentence of the BUCC-like (dev and test) and Tatoeba-like (test) sets of every micro-world language,
English sides included, embedded twice in one process, the sides taking turns, same batches and torch threads:
by ``Retrieval.embed`` (what retrieval stages run: the encoder cut to the layers below the pooled one,
``ray_xt.families.retrieval.first_layers_only``) and by the plain way, the whole encoder with
``output_hidden_states=True`` and the pooled layer picked out of its states (what the evaluator did before,
and what XTREME's reference code does). Both must give the same embeddings and the same BUCC F1 and Tatoeba
accuracy; the ratio is sentences/s of ray_xt over the whole encoder's. Prints a markdown row for
docs/benchmarks.md.
"""

from __future__ import annotations

import json

from _world import bench_world, best_of_turns, evaluation_parser, machine, today, work_folder

SETS = (("bucc2018", "dev"), ("bucc2018", "test"), ("tatoeba", "test"))


def main() -> None:
    opts = evaluation_parser(__doc__, batch_size=128).parse_args()

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ray_xt.data import load_features
    from ray_xt.families.base import eval_mode, length_sorted_batches, pad, quiet_transformers
    from ray_xt.families.retrieval import Retrieval, default_layer
    from ray_xt.tasks.registry import TASKS

    torch.set_num_threads(opts.threads)
    quiet_transformers()
    work = work_folder("ray_xt_bench_retrieval_")
    langs = ["qca", "qcy", "qso", "qgr", "qka", "qhy"]
    world = bench_world(work, opts.smoke, scale=opts.scale, target={"tasks": ["bucc2018", "tatoeba"]},
                        languages=["en", *langs])
    data = {(task, split, lang): load_features(world.task_features(task, split, [lang]))
            for task, split in SETS for lang in langs}
    pad_id = AutoTokenizer.from_pretrained(world.model_path).pad_token_id
    # one model per side: transformers hooks the layers that record hidden_states on the first forward that
    # asks for them, and ray_xt's side never asks
    ray_model, whole_model = AutoModel.from_pretrained(world.model_path), AutoModel.from_pretrained(world.model_path)
    layer = default_layer(ray_model.config.num_hidden_layers)
    retrieval = Retrieval(layer=layer)
    n = sum(len(f["input_ids"]) for f, _, _ in data.values())

    def ray_xt_side():
        return {key: retrieval.embed(ray_model, f["input_ids"], pad_id, opts.batch_size)
                for key, (f, _, _) in data.items()}

    def whole_encoder_embed(input_ids):
        out = np.zeros((len(input_ids), whole_model.config.hidden_size), dtype=np.float32)
        with eval_mode(whole_model):
            for idx in length_sorted_batches([len(x) for x in input_ids], opts.batch_size):
                ids = pad([input_ids[i] for i in idx], pad_id)
                mask = (ids != pad_id).unsqueeze(-1).float()
                hidden = whole_model(input_ids=ids, attention_mask=mask.squeeze(-1).long(),
                                     output_hidden_states=True).hidden_states[layer]
                out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy()
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)

    def whole_side():
        return {key: whole_encoder_embed(f["input_ids"]) for key, (f, _, _) in data.items()}

    (ray_s, ray_embeddings), (whole_s, whole_embeddings) = best_of_turns(opts.repeats, ray_xt_side, whole_side)
    largest_gap = max(float(np.abs(ray_embeddings[k] - whole_embeddings[k]).max()) for k in data)

    def scores(embeddings):  # the stage's metrics from given embeddings (BUCC's threshold chosen on dev)
        out, thresholds = {}, {}
        for (task, split, lang), (f, examples, _) in data.items():  # SETS order: a language's dev before test
            scorer = Retrieval(layer=layer, threshold=thresholds.get(lang) if split == "test" else None)
            evaluation = scorer.score(embeddings[(task, split, lang)], f, examples, TASKS[task])
            out[(task, split, lang)] = round(evaluation.score, 6)
            if task == "bucc2018" and split == "dev":
                thresholds[lang] = evaluation.metrics["threshold"]
        return out

    same_scores = scores(ray_embeddings) == scores(whole_embeddings)
    result = {"date": today(), "machine": machine(), "scale": opts.scale, "layers": ray_model.config.num_hidden_layers,
              "pooled_layer": layer, "sentences": n, "ray_xt_sentences_per_s": round(n / ray_s, 1),
              "whole_sentences_per_s": round(n / whole_s, 1), "ratio": round(whole_s / ray_s, 2),
              "largest_embedding_gap": largest_gap, "same_scores": same_scores}
    print(json.dumps(result))
    print(f"| {result['date']} | {result['machine']} | {opts.scale} (layer {layer} of "
          f"{result['layers']}) | {n} sentences, {len(langs)} languages | {result['ray_xt_sentences_per_s']}/s | "
          f"{result['whole_sentences_per_s']}/s | **{result['ratio']}x** | {largest_gap:.1e} | "
          f"{'yes' if same_scores else 'no'} |")
    if largest_gap > 1e-5 or not same_scores:  # not the same computation: the ratio would mean nothing
        raise SystemExit(f"embeddings differ (largest gap {largest_gap:.2e}) or scores differ ({not same_scores})")


if __name__ == "__main__":
    main()
