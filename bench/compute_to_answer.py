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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    from ray_xt.stages import expand
    from ray_xt.study import StudyDriver

    work = work_folder("ray_xt_bench_compute_")
    size = {"train_size": 160, "dev_size": 40, "pretrain_steps": 30} if opts.smoke else \
        {"train_size": 1000, "dev_size": 150, "pretrain_steps": 300}
    common = {"micro": size, "intermediate": {"tasks": ["mnli", "hellaswag"], "conditions": ["en", "translate-train"]},
              "target": {"tasks": ["pawsx", "udpos", "tatoeba"]}, "trial": {"epochs": 2, "evals_per_epoch": 2},
              "parallel_stages": 2}
    if opts.smoke:  # the same code paths (a tagging target, a retrieval one without training) on fewer stages
        common.update(intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
                      target={"tasks": ["udpos", "tatoeba"]})
    sides = {
        "ray_xt": {**common, "search": {"num_samples": opts.samples, "max_concurrent": 2},
                   "scheduler": {"enabled": True, "grace_period": 1, "reduction_factor": 2}},
        "full grid": {**common, "search": {"num_samples": opts.samples, "max_concurrent": 2},
                      "scheduler": {"enabled": False}},
    }
    start_local_ray()
    out = {}
    for side, study in sides.items():
        folder = work / side.replace(" ", "_")
        cfg = study_in(folder, name="compute", **study)
        records = StudyDriver(cfg, log=lambda m: None).run(progress=False)
        steps = trial_steps(folder / "results" / "compute" / "tune")
        stages = {s.name: s for s in expand(cfg)}
        total = sum(steps.values())
        if side == "full grid":  # no checkpoint reuse: every target retrains its intermediate model
            total += sum(steps[stage.upstream.name] for stage in stages.values()
                         if stage.kind in ("target", "retrieval") and stage.upstream is not None)
        targets = {r["label"]: r for r in records if r["stage"]["stage"] == "target"}
        retrieval = {r["label"]: r for r in records if r["stage"]["stage"] == "retrieval"}
        out[side] = {
            "steps": total,
            "best_dev": {k: r["sweep"]["best_score"] for k, r in targets.items()},
            "zero_shot": {k: statistics.mean(v for lang, v in r["zero_shot"].items() if lang != "en")
                          for k, r in {**targets, **retrieval}.items()},
        }
    ray.shutdown()
    ours, grid = out["ray_xt"], out["full grid"]
    dev_gap = [ours["best_dev"][k] - grid["best_dev"][k] for k in grid["best_dev"]]
    zs_gap = [ours["zero_shot"][k] - grid["zero_shot"][k] for k in grid["zero_shot"]]
    summary = {"date": today(), "machine": machine(), "target_stages": len(dev_gap),
               "ray_xt_steps": ours["steps"], "grid_steps": grid["steps"],
               "ratio": round(ours["steps"] / grid["steps"], 3),
               "best_dev_gap_mean": round(100 * statistics.mean(dev_gap), 2),
               "best_dev_gap_abs_max": round(100 * max(map(abs, dev_gap)), 2),
               "zero_shot_gap_mean": round(100 * statistics.mean(zs_gap), 2)}
    print(json.dumps({**summary, "per_stage": {k: {"dev": [ours["best_dev"][k], grid["best_dev"][k]],
                                                   "zero_shot": [ours["zero_shot"][k], grid["zero_shot"][k]]}
                                               for k in grid["best_dev"]}}))
    print(f"| {summary['date']} | {summary['machine']} | {len(dev_gap)} target stages, {opts.samples} trials/sweep | "
          f"{ours['steps']} | {grid['steps']} | **{100 * summary['ratio']:.0f}%** | "
          f"{summary['best_dev_gap_mean']:+.2f} (max abs {summary['best_dev_gap_abs_max']:.2f}) | "
          f"{summary['zero_shot_gap_mean']:+.2f} |")


if __name__ == "__main__":
    main()
