"""Scaling of cost with work: study wall time as languages, intermediate tasks and seeds double.

    .venv/bin/python bench/study_scaling.py [--smoke]

A small micro-world study (one scale, ``en`` + 2 synthetic languages, one
intermediate task in English, PAWS-X-like and UD-POS-like targets, one seed,
one trial per sweep) is run, then the same study with the languages, the
intermediate tasks or the seeds doubled, each on a fresh storage folder and the
same local Ray instance (2 CPUs, 2 stages at once). Timed: ``StudyDriver.run``
after the micro world is built (a world with other languages has its own
tokenizer and models, which is build cost, not study cost). A row per variant:
stages, wall time, seconds per stage and growth against the base (time growth /
stage growth <= 1 means no worse than linear in stages).
"""

from __future__ import annotations

import argparse
import json
import time

from _world import machine, start_local_ray, study_in, today, work_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    from ray_xt.stages import expand
    from ray_xt.study import StudyDriver, resolve_inputs

    work = work_folder("ray_xt_bench_scaling_")
    size = {"train_size": 160, "dev_size": 40, "pretrain_steps": 30} if opts.smoke else \
        {"train_size": 600, "dev_size": 100, "pretrain_steps": 200}
    base = {"micro": {**size, "languages": ["en", "qca", "qso"]},
            "intermediate": {"tasks": ["mnli"], "conditions": ["en"]}, "target": {"tasks": ["pawsx", "udpos"]},
            "seeds": [0], "trial": {"epochs": 1, "evals_per_epoch": 1},
            "search": {"num_samples": 1, "max_concurrent": 1}, "scheduler": {"enabled": False}, "parallel_stages": 2}
    variants = {
        "base": {},
        "languages x2": {"micro": {**size, "languages": ["en", "qca", "qcy", "qso", "qgr", "qka"]}},
        "intermediate tasks x2": {"intermediate": {"tasks": ["mnli", "hellaswag"], "conditions": ["en"]}},
        "seeds x2": {"seeds": [0, 1]},
    }
    if opts.smoke:  # every variant runs the same code; two keep the script alive at a third of the time
        variants = {name: variants[name] for name in ("base", "seeds x2")}
    start_local_ray()
    rows = []
    for name, change in variants.items():
        folder = work / name.replace(" ", "_")
        cfg = study_in(folder, name="scaling", **{**base, **change})
        resolve_inputs(cfg, use_ray=False, progress=False)  # build outside the timing
        started = time.perf_counter()
        StudyDriver(cfg, log=lambda m: None).run(progress=False)
        rows.append((name, len(expand(cfg)), time.perf_counter() - started))
    ray.shutdown()
    base_stages, base_seconds = rows[0][1], rows[0][2]
    print(json.dumps([{"variant": n, "stages": s, "seconds": round(t, 1)} for n, s, t in rows]))
    print("| date | machine | variant | stages | wall time | s per stage | time growth / stage growth |")
    for name, stages, seconds in rows:
        growth = (seconds / base_seconds) / (stages / base_stages)
        print(f"| {today()} | {machine()} | {name} | {stages} | {seconds:.0f} s | {seconds / stages:.1f} | "
              f"{growth:.2f} |")


if __name__ == "__main__":
    main()
