"""What every benchmark starts from: a small micro world, a pretrained micro scale and cached features.

Benchmarks import this (``from _world import ...``) so each measures only its own comparison.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def machine() -> str:
    """Architecture, cores, CPU model and its widest vector/bf16 support: results move with them (a CPU with
    AVX-512 BF16 pretrains micro scales ~2x faster than an AVX2 one)."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    vector = next((name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                   if flag in flags), "")
    return ", ".join(x for x in (platform.machine(), f"{os.cpu_count()} cores", model, vector) if x)


def evaluation_parser(doc: str, batch_size: int) -> argparse.ArgumentParser:
    """The options every evaluation benchmark takes: scale, batch size, torch threads, repeats, smoke."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="micro-m")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="best of N timings per side")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script alive in CI")
    return parser


def best_of_turns(repeats: int, *sides):
    """Each side's best time over the repeats and its last result, the sides taking turns (this shared
    machine's speed drifts by tens of percent within minutes; turns keep a slow spell from landing on one side
    only)."""
    import time

    times, results = [[] for _ in sides], [None] * len(sides)
    for _ in range(repeats):
        for k, fn in enumerate(sides):
            started = time.perf_counter()
            results[k] = fn()
            times[k].append(time.perf_counter() - started)
    return [(min(t), r) for t, r in zip(times, results)]


def work_folder(prefix: str) -> Path:
    """A temporary folder for one run of a benchmark, removed when the script ends (``RAY_XT_BENCH_KEEP=1``
    keeps it to look at): each full bench smoke run would otherwise leave about a gigabyte in /tmp."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("RAY_XT_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def today() -> str:
    return str(date.today())


@dataclass
class BenchWorld:
    cfg: object  # StudyConfig of the benchmark's study
    root: Path  # task data (XTREME layout)
    model_path: str  # the pretrained scale (tokenizer beside it)
    features: object  # ray_xt.data.FeatureCache on the benchmark's storage

    def task_features(self, task: str, split: str, langs: list[str], max_examples: int | None = None) -> Path:
        from ray_xt.families import family_of
        from ray_xt.tasks.registry import TASKS

        spec = TASKS[task]
        labels = family_of(spec).label_space(self.root, spec)
        return self.features.features(self.root, spec, split, langs, self.model_path, max_len=64,
                                      max_examples=max_examples, labels=labels)


def bench_world(work: Path, smoke: bool, scale: str = "micro-s", languages: list[str] | None = None,
                **study_overrides) -> BenchWorld:
    """A benchmark study on the micro world (built once per cache folder; tiny when ``smoke``)."""
    from conftest import tiny_study
    from ray_xt.config import parse_study
    from ray_xt.data import FeatureCache
    from ray_xt.study import resolve_inputs

    size = {"train_size": 160, "dev_size": 40, "corpus_sentences": 600, "pretrain_steps": 30} if smoke else \
        {"train_size": 2000, "dev_size": 300, "corpus_sentences": 3000, "pretrain_steps": 300}
    micro = {**size, "cache_dir": os.environ.get("RAY_XT_CACHE", str(work / "cache"))}
    if languages:
        micro["languages"] = languages
    study = tiny_study(work, Path(micro["cache_dir"]), name="bench", scales=[scale],
                       micro={**micro, **study_overrides.pop("micro", {})}, **study_overrides)
    cfg = parse_study(study)
    resolved = resolve_inputs(cfg, use_ray=False, progress=False)
    return BenchWorld(cfg, resolved.data_root, resolved.model_paths[scale],
                      FeatureCache(work / "results" / "features"))


def start_local_ray(num_cpus: int = 2) -> None:
    """The local Ray instance ``ray-xt run`` would start (its worker env), quiet."""
    from ray_xt.local_ray import start_ray

    start_ray(num_cpus=num_cpus, logging_level="ERROR")


def study_in(folder: Path, **overrides):
    """A parsed benchmark study stored under ``folder``, its micro world in $RAY_XT_CACHE (shared by runs)."""
    from conftest import tiny_study
    from ray_xt.config import parse_study

    cache = Path(os.environ.get("RAY_XT_CACHE", folder.parent / "cache"))
    return parse_study(tiny_study(folder, cache, **overrides))
