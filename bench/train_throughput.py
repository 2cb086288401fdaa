"""Training throughput of one ray_xt trial (DeepSpeed engine) vs plain HF Trainer without DeepSpeed.

    .venv/bin/python bench/train_throughput.py [--scale micro-m] [--task pawsx] [--zero-stage 2] [--epochs 2]
        [--group-by-length] [--smoke]
        [--peak-tflops T]   # on a GPU: the device's peak (e.g. 312 for an A100 in bf16) to report MFU

Both sides train the same micro scale with the same fresh head, cached PAWS-X-like
features, batch size, learning rate, epochs, seed and torch threads, in this one
process one after the other: ray_xt's trial loop (``ray_xt.loop.train``: a
DeepSpeed ZeRO engine, the loop every trial runs; here its reports go to a
local session instead of Ray Tune, so Tune's own costs are the orchestration
benchmark's business) and ``transformers.Trainer.train`` (no DeepSpeed). The
rate is real tokens (no padding) per second of optimiser work; the ratio is
ray_xt over the Trainer. With ``--peak-tflops`` it also prints model FLOPs
utilisation (6 x parameters x tokens / time / peak). ``--group-by-length`` trains both sides on
length-grouped batches (``trial.group_by_length``; the Trainer's ``train_sampling_strategy="group_by_length"``);
the rate stays real tokens per second, so the gain from less padding shows against a run without the flag.
Both sides' models are then scored on the English dev set by the same evaluator, so a change of batching that
hurt the model would show.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from _world import bench_world, machine, today, work_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="micro-m")
    parser.add_argument("--task", default="pawsx", choices=["pawsx", "xnli"])
    parser.add_argument("--group-by-length", action="store_true", help="length-grouped batches on both sides")
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(opts.threads)  # before torch: no library may change the thread count

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.families.base import quiet_transformers
    from ray_xt.loop import Hyper, MemorySession, TaskInputs, TrialSpec, train
    from ray_xt.process_env import prepare_process
    from ray_xt.tasks.registry import TASKS

    work = work_folder("ray_xt_bench_train_")
    world = bench_world(work, opts.smoke, scale=opts.scale, target={"tasks": [opts.task]})
    task = TASKS[opts.task]
    labels = family_of(task).label_space(world.root, task)
    train_path = world.task_features(opts.task, "train", ["en"])
    dev_path = world.task_features(opts.task, "dev", ["en"], max_examples=None if opts.smoke else 1000)
    features = load_features(train_path)[0]
    tokens = sum(len(ids) for ids in features["input_ids"]) * opts.epochs
    lr = 3e-4

    prepare_process(opts.threads)
    quiet_transformers()
    spec = TrialSpec(model_path=world.model_path, tokenizer_path=world.model_path,
                     tasks=(TaskInputs(opts.task, tuple(labels), str(train_path), str(dev_path)),), epochs=opts.epochs,
                     batch_size=opts.batch_size, evals_per_epoch=1, warmup_ratio=0.1, weight_decay=0.01,
                     zero_stage=opts.zero_stage, bf16="auto", cpus=opts.threads, seed=0, stage_key="bench",
                     git_revision="bench", group_by_length=opts.group_by_length)
    session = MemorySession()
    train(spec, Hyper(learning_rate=lr), session)
    ray_rate = session.reports[-1]["examples_per_second"] * tokens / (len(features["input_ids"]) * opts.epochs)

    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    model = family_of(task).load_model(world.model_path, len(labels), True, labels)
    args = TrainingArguments(output_dir=str(work / "hf"), learning_rate=lr, num_train_epochs=opts.epochs,
                             per_device_train_batch_size=opts.batch_size, warmup_steps=0.1, weight_decay=0.01,
                             max_grad_norm=1.0, eval_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
                             dataloader_num_workers=0, disable_tqdm=True, logging_strategy="no", seed=0,
                             train_sampling_strategy="group_by_length" if opts.group_by_length else "random")
    dataset = Dataset.from_dict({"input_ids": features["input_ids"], "labels": features["label"]})
    tokenizer = AutoTokenizer.from_pretrained(world.model_path)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    started = time.perf_counter()
    trainer.train()
    hf_rate = tokens / (time.perf_counter() - started)
    # accelerate takes the RANK/WORLD_SIZE variables a DeepSpeed trial sets for a distributed CPU run and,
    # unless OMP_NUM_THREADS is set, gives torch every physical core: the Trainer then had 2 threads to
    # ray_xt's 1 (which made ray_xt look 0.54-0.76x as fast). OMP_NUM_THREADS is pinned in main().
    assert torch.get_num_threads() == opts.threads, "the Trainer side ran with other thread settings"
    dev, dev_examples, _ = load_features(dev_path)
    trainer_dev = family_of(task).evaluate(trainer.model, dev, dev_examples, tokenizer.pad_token_id, task, "en").score

    params = sum(p.numel() for p in model.parameters())
    result = {"date": today(), "machine": machine(), "scale": opts.scale, "parameters": params,
              "zero_stage": opts.zero_stage, "tokens": int(tokens), "ray_xt_tokens_per_s": round(ray_rate),
              "trainer_tokens_per_s": round(hf_rate), "ratio": round(ray_rate / hf_rate, 2),
              "task": opts.task, "group_by_length": opts.group_by_length,
              "ray_xt_dev": round(session.reports[-1]["score"], 4), "trainer_dev": round(trainer_dev, 4)}
    if opts.peak_tflops:
        for side, rate in (("ray_xt", ray_rate), ("trainer", hf_rate)):
            result[f"{side}_mfu"] = round(6 * params * rate / (opts.peak_tflops * 1e12), 4)
    print(json.dumps(result))
    print(f"| {result['date']} | {result['machine']} | {opts.scale} ({params / 1e6:.2f} M) | ZeRO-{opts.zero_stage} | "
          f"{result['ray_xt_tokens_per_s']} tok/s | {result['trainer_tokens_per_s']} tok/s | **{result['ratio']}x** |")


if __name__ == "__main__":
    main()
