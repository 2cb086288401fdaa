"""Compute to the answer: trial-steps ray_xt spends on a comparison table vs a paper-style full grid.

    .venv/bin/python bench/compute_to_answer.py [--samples 4] [--smoke]

One micro-world study (micro-s; MNLI-like and HellaSwag-like intermediate tasks in English and translated;
PAWS-X-like and UD-POS-like targets trained from the pretrained model and from every intermediate checkpoint,
and Tatoeba-like retrieval evaluated from each of them, as the paper's table has BUCC and Tatoeba) is run
twice on the same local Ray:

- **ray_xt**: ``--samples`` trials per sweep with ASHA (grace 1 evaluation, reduction 2), each intermediate
  checkpoint trained once and reused by every target;
- **full grid**: the same ``--samples`` learning rates per stage trained to the end (ASHA off) and, as in a
  pipeline without checkpoint reuse, every target stage (retrieval included: it is evaluated from the
  intermediate model) pays for training its intermediate model again.

Two more arms (issue 42): **warm** — ray_xt with warm sweeps (``search.warm_start``: a stage informed by related
finished stages runs half the trials, seeded with their best learning rates and their trials as Optuna
observations); **sequential** — warm sweeps and ``seeds: {min: 2, max: --max-seeds}``, against the grid run at
every seed (the grid's steps times the most seeds). The run-to-run spread is the sd across the sequential
arm's seeds of each target stage's best dev score.

Counted: optimiser steps actually run (each trial's last reported ``step``, from Tune's results). Quality:
the best dev score of every target stage on each side, and the mean zero-shot score of the best
checkpoint, side by side. Memoisation is not counted (a re-run costs ray_xt nothing and the grid all again).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _world import machine, start_local_ray, study_in, today, work_folder


def trial_steps(tune_dir: Path) -> dict[str, int]:
    """Steps run per stage folder: the sum over its trials of the last reported step."""
    steps: dict[str, int] = {}
    for result in tune_dir.glob("*/run_trial_*/result.json"):
        lines = result.read_text().splitlines()
        if lines:
            steps[result.parent.parent.name] = steps.get(result.parent.parent.name, 0) + json.loads(lines[-1])["step"]
    return steps


def run_side(folder: Path, study: dict, grid: bool = False) -> dict:
    """One arm: its study run on the shared Ray; steps (a grid pays again for every target's intermediate), each
    target stage's best dev and mean zero-shot score, per seed."""
    from ray_xt.stages import expand
    from ray_xt.study import StudyDriver

    cfg = study_in(folder, name="compute", **study)
    records = StudyDriver(cfg, log=lambda m: None).run(progress=False)
    steps = trial_steps(folder / "results" / "compute" / "tune")
    stages = {s.name: s for s in expand(cfg)}
    total = sum(steps.values())
    if grid:  # no checkpoint reuse: every target retrains its intermediate model
        total += sum(steps[stage.upstream.name] for stage in stages.values()
                     if stage.kind in ("target", "retrieval") and stage.upstream is not None)
    targets = {r["label"]: r for r in records if r["stage"]["stage"] == "target"}
    retrieval = {r["label"]: r for r in records if r["stage"]["stage"] == "retrieval"}
    return {"cfg": cfg, "records": records, "steps": total,
            "steps_by_seed": {seed: sum(n for name, n in steps.items() if stages[name].seed == seed)
                              for seed in cfg.seeds},
            "best_dev": {k: r["sweep"]["best_score"] for k, r in targets.items()},
            "zero_shot": {k: statistics.mean(v for lang, v in r["zero_shot"].items() if lang != "en")
                          for k, r in {**targets, **retrieval}.items()}}


def seed_spread(records: list[dict]) -> float:
    """Run-to-run spread: the mean over target stages of their best dev score's sd across seeds (points)."""
    by_stage: dict[str, list[float]] = {}
    for r in records:
        if r["stage"]["stage"] == "target":
            by_stage.setdefault(r["label"].rsplit(" seed", 1)[0], []).append(100 * r["sweep"]["best_score"])
    sds = [statistics.stdev(v) for v in by_stage.values() if len(v) > 1]
    return round(statistics.mean(sds), 2) if sds else float("nan")


def gaps(ours: dict, grid: dict) -> dict:
    dev = [ours["best_dev"][k] - grid["best_dev"][k] for k in grid["best_dev"]]
    zs = [ours["zero_shot"][k] - grid["zero_shot"][k] for k in grid["zero_shot"]]
    return {"best_dev_gap_mean": round(100 * statistics.mean(dev), 2),
            "best_dev_gap_abs_max": round(100 * max(map(abs, dev)), 2),
            "zero_shot_gap_mean": round(100 * statistics.mean(zs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-seeds", type=int, default=4, help="the sequential arm's most seeds (min: 2)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    work = work_folder("ray_xt_bench_compute_")
    size = {"train_size": 160, "dev_size": 40, "pretrain_steps": 30} if opts.smoke else \
        {"train_size": 1000, "dev_size": 150, "pretrain_steps": 300}
    common = {"micro": size, "intermediate": {"tasks": ["mnli", "hellaswag"], "conditions": ["en", "translate-train"]},
              "target": {"tasks": ["pawsx", "udpos", "tatoeba"]}, "trial": {"epochs": 2, "evals_per_epoch": 2},
              "parallel_stages": 2}
    if opts.smoke:  # the same code paths (a tagging target, a retrieval one without training) on fewer stages
        common.update(intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
                      target={"tasks": ["udpos", "tatoeba"]})
    search = {"num_samples": opts.samples, "max_concurrent": 2}
    asha = {"enabled": True, "grace_period": 1, "reduction_factor": 2}
    warm = {**search, "warm_start": {"enabled": True, "num_samples": max(1, opts.samples // 2)}}
    max_seeds = 3 if opts.smoke else opts.max_seeds
    sides = {
        "ray_xt": {**common, "search": search, "scheduler": asha},
        # warm sweeps: half the trials where related finished stages seed the search
        "warm": {**common, "search": warm, "scheduler": asha},
        # warm sweeps and seeds added while a contrast is undecided, against every seed for every stage
        "sequential": {**common, "search": warm, "scheduler": asha, "seeds": {"min": 2, "max": max_seeds}},
        "full grid": {**common, "search": search, "scheduler": {"enabled": False}},
    }
    start_local_ray()
    out = {side: run_side(work / side.replace(" ", "_"), study, grid=side == "full grid")
           for side, study in sides.items()}
    ray.shutdown()
    grid = out["full grid"]
    sequential = out["sequential"]
    from ray_xt.sequential import replay
    from ray_xt.stages import expand

    by_key = {r["stage"]["stage_key"]: r for r in sequential["records"]}
    state = replay(sequential["cfg"], expand(sequential["cfg"]), by_key)
    # every seed for every stage, as a fixed design with the most seeds runs them: seed 0's steps per seed
    fixed_seeds = grid["steps"] * max_seeds
    summary = {"date": today(), "machine": machine(), "target_stages": len(grid["best_dev"]),
               "grid_steps": grid["steps"],
               **{f"{side}_steps": out[side]["steps"] for side in ("ray_xt", "warm")},
               **{f"{side}_ratio": round(out[side]["steps"] / grid["steps"], 3) for side in ("ray_xt", "warm")},
               "warm_vs_ray_xt": round(out["warm"]["steps"] / out["ray_xt"]["steps"], 3),
               **{f"{side}_{k}": v for side in ("ray_xt", "warm") for k, v in gaps(out[side], grid).items()},
               "seed_spread_dev_sd": seed_spread(sequential["records"]),
               "sequential_steps": sequential["steps"], "sequential_steps_by_seed": sequential["steps_by_seed"],
               "sequential_vs_grid_at_max_seeds": round(sequential["steps"] / fixed_seeds, 3),
               "sequential_decisions": {name: [d.state, len(state.history[name])]
                                        for name, d in state.decisions.items()}}
    print(json.dumps(summary))
    print(f"| {summary['date']} | {summary['machine']} | {len(grid['best_dev'])} target stages, {opts.samples} "
          f"trials/sweep ({max(1, opts.samples // 2)} warm) | {grid['steps']} | {out['ray_xt']['steps']} "
          f"(**{100 * summary['ray_xt_ratio']:.0f}%**) | {out['warm']['steps']} (**{100 * summary['warm_ratio']:.0f}%**) "
          f"| {summary['warm_best_dev_gap_mean']:+.2f} (max abs {summary['warm_best_dev_gap_abs_max']:.2f}; seed sd "
          f"{summary['seed_spread_dev_sd']:.2f}) | {summary['warm_zero_shot_gap_mean']:+.2f} | "
          f"{sequential['steps']} of {fixed_seeds} at {max_seeds} seeds "
          f"(**{100 * summary['sequential_vs_grid_at_max_seeds']:.0f}%**) |")


if __name__ == "__main__":
    main()
