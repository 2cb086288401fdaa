"""Zero-shot evaluation throughput: ray_xt's evaluator vs HF ``Trainer.evaluate`` over every language.

    .venv/bin/python bench/eval_throughput.py [--task pawsx] [--scale micro-m] [--repeats 5] [--smoke]

The same model (a micro scale with the task's head) scores the dev set of every
micro-world language twice, side by side in one process with the same torch
threads and batch size: once with ``family.evaluate`` (what target stages run:
length-sorted batches padded to their own longest row, the last layer for the
first token only, no Trainer machinery), once with ``transformers.Trainer.evaluate``
(dynamic padding by ``DataCollatorWithPadding``, in dataset order). Both must
predict the same labels; the ratio is examples/s of ray_xt over the Trainer's.
A third pass, ray_xt's batches through the whole model, tells what the batches
alone give. Prints a markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import time

from _world import bench_world, best_of_turns, evaluation_parser, machine, today, work_folder


def main() -> None:
    parser = evaluation_parser(__doc__, batch_size=64)
    parser.add_argument("--task", default="pawsx", choices=["pawsx", "xnli"])
    opts = parser.parse_args()

    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.families.base import quiet_transformers
    from ray_xt.tasks.registry import TASKS

    torch.set_num_threads(opts.threads)
    quiet_transformers()
    work = work_folder("ray_xt_bench_eval_")
    world = bench_world(work, opts.smoke, scale=opts.scale, target={"tasks": [opts.task]},
                        languages=["en", "qca", "qcy", "qso", "qgr", "qka", "qhy"])
    task = TASKS[opts.task]
    family = family_of(task)
    langs = world.cfg.languages_for(opts.task)
    labels = family.label_space(world.root, task)
    model = family.load_model(world.model_path, len(labels), True, labels)
    model.eval()
    pad_id = AutoTokenizer.from_pretrained(world.model_path).pad_token_id
    per_lang = {lang: load_features(world.task_features(opts.task, "dev", [lang])) for lang in langs}
    n = sum(len(f[0]["input_ids"]) for f in per_lang.values())

    def ray_xt_side():
        return {lang: family.evaluate(model, f, ex, pad_id, task, lang, batch_size=opts.batch_size).submission
                for lang, (f, ex, _) in per_lang.items()}

    def batches_only_side():  # attribution: ray_xt's batches, but the whole model for every token
        def full_forward(m, **inputs):
            return m(**inputs).logits

        return {lang: [str(model.config.id2label[int(p)])
                       for p in family.predict(model, f["input_ids"], pad_id, opts.batch_size, logits=full_forward)]
                for lang, (f, _, _) in per_lang.items()}

    args = TrainingArguments(output_dir=str(work / "hf"), per_device_eval_batch_size=opts.batch_size, use_cpu=True,
                             report_to=[], disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(AutoTokenizer.from_pretrained(
        world.model_path)))
    datasets = {lang: Dataset.from_dict({"input_ids": f["input_ids"], "labels": f["label"]})
                for lang, (f, _, _) in per_lang.items()}

    def hf_side():
        out = {}
        for lang, ds in datasets.items():
            logits = trainer.predict(ds).predictions  # Trainer.evaluate's loop, keeping the predictions
            out[lang] = [str(model.config.id2label[int(p)]) for p in np.argmax(logits, -1)]
        return out

    (ray_s, ray_preds), (hf_s, hf_preds), (batches_s, _) = best_of_turns(
        opts.repeats, ray_xt_side, hf_side, batches_only_side)
    # How close each side is to the machine: the model FLOPs it ran (torch's FLOP counter over one pass) per
    # second, beside the same thread count's rate on one dense matmul of the model's FFN shape.
    from torch.utils.flop_counter import FlopCounterMode

    def flops_of(fn) -> int:  # the sides differ: ray_xt runs the last layer for the first token only
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    ray_flops, hf_flops = flops_of(ray_xt_side), flops_of(hf_side)
    hidden = model.config.hidden_size
    a, b = torch.randn(64 * 32, hidden), torch.randn(hidden, model.config.intermediate_size)
    for _ in range(3):
        a @ b
    started, reps = time.perf_counter(), 50
    for _ in range(reps):
        a @ b
    matmul_flops_per_s = 2 * a.shape[0] * hidden * b.shape[1] * reps / (time.perf_counter() - started)
    agree = sum(a == b for lang in langs for a, b in zip(ray_preds[lang], hf_preds[lang])) / n
    result = {"date": today(), "machine": machine(), "task": opts.task, "scale": opts.scale, "languages": len(langs),
              "examples": n, "ray_xt_examples_per_s": round(n / ray_s, 1), "trainer_examples_per_s": round(n / hf_s, 1),
              "ratio": round(hf_s / ray_s, 2), "ratio_batches_only": round(hf_s / batches_s, 2),
              "prediction_agreement": round(agree, 4),
              "ray_xt_gflops_per_s": round(ray_flops / ray_s / 1e9, 2), "trainer_gflops_per_s": round(hf_flops / hf_s / 1e9, 2),
              "ray_xt_flops_share": round(ray_flops / hf_flops, 3),
              "dense_matmul_gflops_per_s": round(matmul_flops_per_s / 1e9, 2)}
    print(json.dumps(result))
    print(f"| {result['date']} | {result['machine']} | {opts.task}, {opts.scale} | {len(langs)} languages, {n} "
          f"examples | {result['ray_xt_examples_per_s']}/s | {result['trainer_examples_per_s']}/s | "
          f"**{result['ratio']}x** | {100 * agree:.1f}% | {result['ray_xt_gflops_per_s']} / "
          f"{result['trainer_gflops_per_s']} / {result['dense_matmul_gflops_per_s']} | "
          f"{100 * result['ray_xt_flops_share']:.0f}% | {result['ratio_batches_only']}x |")
    if agree < 0.99:  # not the same computation: the ratio would mean nothing
        raise SystemExit(f"predictions differ on {100 * (1 - agree):.1f}% of examples")


if __name__ == "__main__":
    main()
