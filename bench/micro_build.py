"""Micro-world build budget: cold build (world + tokenizer + scales) and cached rebuild, with peak memory.

    .venv/bin/python bench/micro_build.py [--scales micro-s,micro-m,micro-l] [--cache DIR]

Cold: a fresh cache folder, pretraining as parallel Ray tasks (1 CPU each), as
`ray-xt run` does. Cached: the same build again (file checks only). Peak memory
is the largest resident set of this process and of any of its children.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

from _world import machine, work_folder


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (Ray's raylet and workers included)."""

    def __init__(self, interval: float = 0.5):
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="micro-s,micro-m,micro-l")
    parser.add_argument("--cache", default=None, help="cache folder (default: a new temporary one)")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override, for a smoke run")
    opts = parser.parse_args()

    from dataclasses import replace

    import ray

    from ray_xt.local_ray import start_ray
    from ray_xt.micro.build import build_micro
    from ray_xt.micro.world import WorldSpec
    from ray_xt.scales import SCALES

    cache = Path(opts.cache) if opts.cache else work_folder("ray_xt_micro_bench_")
    scales = {
        s: (replace(SCALES[s].micro, steps=opts.pretrain_steps) if opts.pretrain_steps else SCALES[s].micro)
        for s in opts.scales.split(",")
    }
    with PeakMemory() as memory:
        start_ray(num_cpus=os.cpu_count(), logging_level="ERROR")
        started = time.perf_counter()
        build_micro(WorldSpec(), 2000, scales, cache, use_ray=True, progress=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        world = build_micro(WorldSpec(), 2000, scales, cache, use_ray=True, progress=False)
        cached = time.perf_counter() - started
        ray.shutdown()
    stats = {name: json.loads((world.model_dirs[name] / "pretrain_stats.json").read_text()) for name in scales}
    result = {
        "date": str(date.today()), "machine": machine(),
        "scales": {k: {"parameters": v["parameters"], "final_mlm_loss": round(v["final_loss"], 3)} for k, v in stats.items()},
        "cold_s": round(cold, 1), "cached_s": round(cached, 2), "peak_rss_all_processes_mb": round(memory.peak / 2**20),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
