"""Featurisation reuse across a study: tokenisations performed vs what re-tokenising in every trial costs.

    .venv/bin/python bench/featurisation.py [--seeds 2] [--samples 3] [--smoke]

Runs a small micro-world study with many trials (English and translate-train MNLI-like intermediate stages,
PAWS-X-like targets from each checkpoint, ``--seeds`` seeds, ``--samples`` trials per sweep) and reports:
tokenisations performed (feature-cache misses), distinct feature sets on disk (each (task, split, languages,
tokenizer, max_len) should be tokenised exactly once), feature loads by trials and zero-shot evaluations, the
measured time of tokenising everything once, of loading a cached set, and the time the same loads would cost
if every trial tokenised its own inputs (each load x the mean measured tokenisation time of a set).
"""

from __future__ import annotations

import argparse
import json
import time

from _world import bench_world, machine, start_local_ray, today, work_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    opts = parser.parse_args()

    import ray

    from ray_xt.data import load_features
    from ray_xt.study import StageRunner, StudyDriver

    work = work_folder("ray_xt_bench_feat_")
    world = bench_world(
        work, opts.smoke, seeds=list(range(opts.seeds)),
        intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train"]}, target={"tasks": ["pawsx"]},
        trial={"epochs": 1, "evals_per_epoch": 1}, search={"num_samples": opts.samples, "max_concurrent": 2},
        scheduler={"enabled": False}, parallel_stages=1)
    start_local_ray()
    runner = StudyDriver(world.cfg, log=lambda m: None)
    started = time.perf_counter()
    records = runner.run(progress=False)
    study_seconds = time.perf_counter() - started
    ray.shutdown()

    cache = runner.parts.features
    feature_dirs = [d for d in cache.directory.iterdir() if (d / "dataset_dict.json").exists()]
    trials = sum(len(r["sweep"]["trials"]) for r in records if "sweep" in r)
    trial_loads = sum(len(r["sweep"]["trials"]) * 2 * len(r["trial_spec"]["tasks"]) for r in records if "sweep" in r)
    eval_loads = sum(len(r.get("zero_shot", {})) for r in records)
    loads = trial_loads + eval_loads

    # measured: tokenising every set once (fresh cache, same inputs) and loading a cached set
    tokenise_seconds, load_seconds = [], []
    for d in feature_dirs:
        t0 = time.perf_counter()
        load_features(d)
        load_seconds.append(time.perf_counter() - t0)
    from ray_xt.data import FeatureCache
    from ray_xt.stages import expand

    stages = {stage.key: stage for stage in expand(world.cfg)}
    for i, record in enumerate(r for r in records if "sweep" in r):  # each sweep's inputs, tokenised afresh
        fresh = FeatureCache(work / f"fresh{i}")
        stage_runner = StageRunner(runner.context(), features=fresh)
        t0 = time.perf_counter()
        stage_runner._features(stages[record["stage"]["stage_key"]])
        tokenise_seconds.append((time.perf_counter() - t0) / max(1, fresh.misses))
    mean_tokenise = (sum(tokenise_seconds) / len(tokenise_seconds)) if tokenise_seconds else float("nan")
    mean_load = sum(load_seconds) / len(load_seconds)
    per_trial_seconds = loads * mean_tokenise
    once_seconds = len(feature_dirs) * mean_tokenise + loads * mean_load
    result = {"date": today(), "machine": machine(), "stages": len(records), "trials": trials,
              "tokenisations": cache.misses, "distinct_feature_sets": len(feature_dirs), "loads": loads,
              "mean_tokenise_s": round(mean_tokenise, 3), "mean_load_s": round(mean_load, 3),
              "tokenise_once_and_load_s": round(once_seconds, 1), "tokenise_per_load_s": round(per_trial_seconds, 1),
              "study_s": round(study_seconds, 1)}
    print(json.dumps(result))
    print(f"| {result['date']} | {result['machine']} | {len(records)} stages, {trials} trials | "
          f"{cache.misses} tokenisations / {len(feature_dirs)} distinct sets | {loads} loads | "
          f"{result['tokenise_once_and_load_s']} s | {result['tokenise_per_load_s']} s | "
          f"{per_trial_seconds / max(once_seconds, 1e-9):.1f}x |")
    if cache.misses != len(feature_dirs):
        raise SystemExit(f"{cache.misses} tokenisations for {len(feature_dirs)} distinct feature sets")


if __name__ == "__main__":
    main()
