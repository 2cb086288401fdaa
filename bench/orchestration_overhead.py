"""Orchestration overhead: a ray_xt sweep vs the same trials as plain HF Trainer calls.

    .venv/bin/python bench/orchestration_overhead.py [--trials 4] [--concurrency 2] [--sweeps 1] [--smoke]
                                                     [--no-warm-trainers] [--baseline both]

Both sides train the same micro scale on the same cached features, with the
same learning rates (those the ray_xt sweep chose), epochs, batch size and
concurrency (plain side: a process pool).  ray_xt's side includes everything a
user pays for per sweep: Tune scheduling, trial actors, DeepSpeed engines,
per-evaluation checkpoints and MLflow logging.  Two plain baselines: plain
``transformers.Trainer`` calls (what a user would otherwise run), and ray_xt's own
trial loop (``ray_xt.loop.train``: the same DeepSpeed engine, model code and
per-evaluation checkpoints) called in plain processes, which leaves Ray, Tune,
trainer hosts and MLflow as the only difference: the orchestration alone.  ASHA is off so both sides do the
same work.  ``--sweeps N`` runs N stages one after another (seeds 0..N-1), as a
study does: a study's later sweeps find its trainer hosts warm
(ray_xt.trainer_hosts); ``--no-warm-trainers`` trains in the trial actors
instead, as before them.  Prints a markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _world import machine, start_local_ray, work_folder


def plain_trainer_trial(args: tuple) -> tuple[float, None]:
    """One trial with transformers.Trainer, no Ray, no DeepSpeed; returns its dev accuracy (and no step time)."""
    spec, lr, out_dir = args
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from ray_xt.data import load_features
    from ray_xt.families import family_of
    from ray_xt.tasks.registry import TASKS

    torch.set_num_threads(max(1, int(spec["cpus"])))
    torch.manual_seed(spec["seed"])
    inputs = spec["tasks"][0]  # the same cached features and fresh head ray_xt's trial uses
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer_path"])
    labels = list(inputs["labels"])
    model = family_of(TASKS[inputs["task"]]).load_model(spec["model_path"], len(labels), True, labels)

    def dataset(path):
        columns = load_features(path)[0]
        return Dataset.from_dict({"input_ids": columns["input_ids"], "labels": columns["label"]})

    train, dev = dataset(inputs["train_features"]), dataset(inputs["dev_features"])
    args = TrainingArguments(
        output_dir=out_dir, learning_rate=lr, num_train_epochs=spec["epochs"],
        per_device_train_batch_size=spec["batch_size"], per_device_eval_batch_size=128,
        warmup_steps=spec["warmup_ratio"], weight_decay=spec["weight_decay"], eval_strategy="epoch",
        save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
        seed=spec["seed"], logging_strategy="no",
    )

    def accuracy(pred):
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
    trainer.train()
    return trainer.evaluate()["eval_accuracy"], None


def plain_loop_trial(args: tuple) -> tuple[float, float]:
    """One trial through ray_xt's own training loop in a plain process (no Ray, Tune, trainer host or MLflow);
    returns its best dev score and its optimiser-step seconds."""
    spec, lr, _ = args
    from ray_xt.loop import Hyper, MemorySession, TrialSpec, train
    from ray_xt.process_env import prepare_process

    prepare_process(spec["cpus"])
    session = MemorySession()
    train(TrialSpec.from_record({**spec, "trainer_pool": None}), Hyper(learning_rate=lr), session)
    return max(r["score"] for r in session.reports), session.reports[-1]["loop.train_s"]


def run_plain(trial_fn, records: list[dict], concurrency: int, work: Path, name: str) -> tuple[list[float], list]:
    """Each sweep's trials (its learning rates, its seed) through ``trial_fn`` at the same concurrency: the
    seconds per sweep and every trial's (best dev score, optimiser-step seconds or None)."""
    seconds, outcomes = [], []
    for n, record in enumerate(records):
        spec = record["trial_spec"]
        lrs = [t["learning_rate"] for t in record["sweep"]["trials"]]
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=concurrency) as pool:
            outcomes += list(pool.map(trial_fn, [(spec, lr, str(work / f"{name}{n}_{i}")) for i, lr in enumerate(lrs)]))
        seconds.append(time.perf_counter() - started)
    return seconds, outcomes


def trial_reports(result: Path) -> list[dict]:
    """Every report of one trial, in order (Tune's ``result.json``: one JSON object per line)."""
    return [json.loads(line) for line in result.read_text().splitlines()]


def sweep_breakdown(tune_dir: Path, sweep_seconds: float, concurrency: int) -> dict:
    """Where a sweep's wall time went, from its trials' own reports (``result.json``).

    Per trial: setup (the ``setup.*`` phases, trial entry to first optimiser step) and the rest of its
    function (training, evaluation, checkpoints, reports: Tune's ``time_total_s`` minus setup). What the
    trials' functions do not account for, per concurrency slot, is Tune and Ray: placement groups, actor
    start, scheduling, syncing.
    """
    setup, inside = [], []
    loop: dict[str, float] = {}
    for result in sorted(tune_dir.glob("*/run_trial_*/result.json")):
        last = trial_reports(result)[-1]
        phases = sum(v for k, v in last.items() if k.startswith("setup."))
        setup.append(phases)
        inside.append(last["time_total_s"] - phases)
        for key, value in last.items():
            if key.startswith("loop."):  # train/evaluate/checkpoint/report seconds inside the trial
                loop[key[5:]] = loop.get(key[5:], 0.0) + value
    per_slot = (sum(setup) + sum(inside)) / concurrency
    return {"trials": len(setup), "setup_s": round(sum(setup), 2), "train_eval_checkpoint_s": round(sum(inside), 2),
            "inside_trials_s": {k: round(v, 2) for k, v in sorted(loop.items())},
            "outside_trials_per_slot_s": round(sweep_seconds - per_slot, 2)}


def sweep_timeline(tune_root: Path, records: list[dict], concurrency: int) -> list[dict]:
    """Per sweep, from wall-clock stamps: the wait before its first trial function runs (Tune's setup, the trial
    actor's process start), the time its slots sit idle between trials, and the wait after its last trial
    ends until the sweep returns (Tune's teardown, result collection)."""
    out = []
    for record in records:
        tune_dir = next(tune_root.glob(f"*-{record['stage']['stage_key'][:8]}"))
        spans = []
        for result in tune_dir.glob("run_trial_*/result.json"):
            reports = trial_reports(result)
            entry = reports[0]["trial_entry_time"]
            spans.append((entry, entry + reports[-1]["time_total_s"]))
        start, end = record["sweep_started_at"], record["sweep_started_at"] + record["sweep_seconds"]
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        busy = sum(e - s for s, e in spans)
        out.append({"before_first_trial_s": round(first - start, 2), "after_last_trial_s": round(end - last, 2),
                    "idle_between_trials_per_slot_s": round(((last - first) * concurrency - busy) / concurrency, 2)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--scale", default="micro-s")
    parser.add_argument("--sweeps", type=int, default=1, help="stages run one after another (seeds 0..N-1)")
    parser.add_argument("--no-warm-trainers", action="store_true", help="train in the Tune trial actors")
    parser.add_argument("--baseline", choices=["trainer", "loop", "both"], default="both",
                        help="plain Trainer calls, ray_xt's trial loop in plain processes, or both")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    from conftest import tiny_study
    from ray_xt.config import parse_study
    from ray_xt.study import StudyDriver

    work = work_folder("ray_xt_bench_")
    size = {"train_size": 160, "corpus_sentences": 600, "pretrain_steps": 30} if opts.smoke else \
        {"train_size": 2000, "corpus_sentences": 3000, "pretrain_steps": 200}
    study = tiny_study(
        work, Path(os.environ.get("RAY_XT_CACHE", work / "cache")),
        name="bench", scales=[opts.scale], micro={**size, "cache_dir": str(work / "cache")},
        trial={"epochs": 1 if opts.smoke else 3},
        search={"num_samples": opts.trials, "max_concurrent": opts.concurrency},
        scheduler={"enabled": False}, seeds=list(range(opts.sweeps)), parallel_stages=1,
        warm_trainers=not opts.no_warm_trainers,
    )
    cfg = parse_study(study)
    start_local_ray(opts.concurrency)
    records = StudyDriver(cfg, log=lambda m: print(m, flush=True)).run(progress=False)
    ray.shutdown()
    sweep_seconds = [r["sweep_seconds"] for r in records]
    ray_seconds = sum(sweep_seconds)
    breakdown = sweep_breakdown(work / "results" / "bench" / "tune", ray_seconds, opts.concurrency)

    baselines = {"trainer": plain_trainer_trial, "loop": plain_loop_trial}
    plain = {name: run_plain(fn, records, opts.concurrency, work, f"plain_{name}")
             for name, fn in baselines.items() if opts.baseline in (name, "both")}

    result = {
        "date": str(date.today()), "machine": machine(),
        "scale": opts.scale, "trials_per_sweep": opts.trials, "sweeps": len(records), "concurrency": opts.concurrency,
        "warm_trainers": not opts.no_warm_trainers, "ray_xt_sweep_s": round(ray_seconds, 1),
        "ray_xt_best_dev": max(r["sweep"]["best_score"] for r in records),
    }
    for name, (seconds, outcomes) in plain.items():  # plain_trainer_s, ratio, ratio_per_sweep; plain_loop_s, ...
        suffix = "" if name == "trainer" else f"_vs_{name}"
        result.update({f"plain_{name}_s": round(sum(seconds), 1), f"ratio{suffix}": round(ray_seconds / sum(seconds), 2),
                       f"ratio_per_sweep{suffix}": [round(r / p, 2) for r, p in zip(sweep_seconds, seconds)],
                       f"plain_{name}_best_dev": max(score for score, _ in outcomes)})
        if name == "loop":  # the same loop's optimiser steps outside Ray, beside the trials' own (breakdown)
            result["plain_loop_train_s"] = round(sum(train_s for _, train_s in outcomes), 2)
    result["ray_xt_breakdown"] = breakdown
    result["ray_xt_timeline"] = sweep_timeline(work / "results" / "bench" / "tune", records, opts.concurrency)
    print(json.dumps(result))
    shape = f"{opts.trials} trials x {opts.concurrency}" + (f", {len(records)} sweeps" if len(records) > 1 else "")

    def cell(seconds_key, ratio_key):
        return f"{result[seconds_key]} s | **{result[ratio_key]}x**" if ratio_key in result else "– | –"

    print(f"| {result['date']} | {result['machine']} | {opts.scale} | {shape} | {result['ray_xt_sweep_s']} s | "
          f"{cell('plain_trainer_s', 'ratio')} | {cell('plain_loop_s', 'ratio_vs_loop')} |")


if __name__ == "__main__":
    main()
