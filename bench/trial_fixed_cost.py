"""Per-trial fixed cost: from a trial's start to its first optimiser step, broken down, beside a plain process.

    .venv/bin/python bench/trial_fixed_cost.py [--trials 3] [--sweeps 2] [--scale micro-s] [--smoke]

Runs ``--sweeps`` ray_xt stage sweeps (seeds 0..N-1, one after another, as a
study runs its stages) of ``--trials`` trials each, one after another (as the
sweep runs them: Tune reuses the trial actor, so each sweep's first trial is in a new actor process
and the rest reuse it) and reads the phases every trial reports (``setup.*`` seconds, see
``ray_xt.loop.PhaseClock``; ``host``: leasing a warm trainer host, and starting it if it is new)
plus the wait before the trial function runs: for a sweep's first
trial from the sweep's start (Tune's setup and the trial actor's process start), for later ones from the
previous trial's end. The first sweep's hosts are new (created when the study starts); later sweeps find
them warm. The baseline is a fresh plain Python
process doing the same work without Ray and DeepSpeed (its interpreter start
included, as the actor start is): imports, cached features,
model with its head, one AdamW step. Prints markdown rows for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _world import bench_world, machine, start_local_ray, today, work_folder

PHASES = ("actor", "host", "imports", "features", "model", "deepspeed_init", "resume", "first_step")

PLAIN = r'''
import json, sys, time
t0 = time.perf_counter(); laps = {}
def lap(name):
    global t0
    now = time.perf_counter(); laps[name] = now - t0; t0 = now
import torch
from transformers import AutoTokenizer
from ray_xt.data import load_features
from ray_xt.families import family_of
from ray_xt.tasks.registry import TASKS
torch.set_num_threads(1)
lap("imports")
model_path, train_path, labels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
features = load_features(train_path)[0]
lap("features")
family = family_of(TASKS["pawsx"])
model = family.load_model(model_path, len(labels), True, labels)
pad = AutoTokenizer.from_pretrained(model_path).pad_token_id
lap("model")
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
loss = model(**family.batch(features, list(range(32)), pad)).loss
loss.backward(); optimizer.step()
lap("first_step")
print(json.dumps(laps))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--sweeps", type=int, default=2)
    parser.add_argument("--scale", default="micro-s")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    from ray_xt.families import family_of
    from ray_xt.study import StudyDriver
    from ray_xt.tasks.registry import TASKS

    work = work_folder("ray_xt_bench_fixed_")
    world = bench_world(work, opts.smoke, scale=opts.scale, trial={"epochs": 1, "evals_per_epoch": 1},
                        search={"num_samples": opts.trials, "max_concurrent": 1}, scheduler={"enabled": False},
                        seeds=list(range(opts.sweeps)), parallel_stages=1)
    start_local_ray()
    records = StudyDriver(world.cfg, log=lambda m: None).run(progress=False)
    ray.shutdown()

    rows, trial_labels = [], []
    for n, record in enumerate(records, 1):
        tune_dir = next((work / "results" / "bench" / "tune").glob(f"*-{record['stage']['stage_key'][:8]}"))
        results = [[json.loads(line) for line in (d / "result.json").read_text().splitlines()]
                   for d in tune_dir.glob("run_trial_*")]
        previous_end = record["sweep_started_at"]
        for i, reports in enumerate(sorted(results, key=lambda r: r[0]["trial_entry_time"]), 1):
            first = reports[0]
            phases = {p: first.get(f"setup.{p}", 0.0) for p in PHASES}
            phases["actor"] = first["trial_entry_time"] - previous_end
            previous_end = first["trial_entry_time"] + reports[-1]["time_total_s"]
            rows.append(phases)
            trial_labels.append(f"sweep {n}, trial {i} ({'new' if i == 1 else 'reused'} actor, "
                           f"{'host started with the study' if n == 1 and i == 1 else 'warm host'})")

    task = TASKS["pawsx"]
    labels = family_of(task).label_space(world.root, task)
    train_path = world.task_features("pawsx", "train", ["en"])
    started = time.perf_counter()
    plain = json.loads(subprocess.run([sys.executable, "-c", PLAIN, world.model_path, str(train_path),
                                       json.dumps(labels)], capture_output=True, text=True, check=True,
                                      env={**os.environ, "DS_ACCELERATOR": "cpu"}).stdout.strip().splitlines()[-1])
    plain_total = time.perf_counter() - started  # the whole process: interpreter start to first step (and exit)
    print(json.dumps({"trials": rows, "plain": plain}))
    print("| date | machine | trial | " + " | ".join(PHASES) + " | total | plain process | ratio |")
    for label, phases in zip(trial_labels, rows):
        total = sum(phases.values())
        print(f"| {today()} | {machine()} | {label} | " + " | ".join(f"{phases[p]:.2f}" for p in PHASES)
              + f" | **{total:.2f} s** | {plain_total:.2f} s | {total / plain_total:.2f}x |")
    print("plain process phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in plain.items()))


if __name__ == "__main__":
    main()
