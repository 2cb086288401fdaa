"""BUCC bitext mining at BUCC's real sizes: blockwise k-nearest neighbours vs the dense similarity matrix.

    .venv/bin/python bench/bucc_mining.py                 # zh-en at its real size, and a side-by-side where dense fits
    .venv/bin/python bench/bucc_mining.py --pairs de fr ru zh   # every pair (hours on 2 CPU cores)
    .venv/bin/python bench/bucc_mining.py --smoke

XTREME's BUCC test sets are the BUCC 2018 shared task's training sets (google-research/xtreme
``scripts/download_data.sh``); their sentence counts per side are in ``SIZES`` (the shared task's overview,
Zweigenbaum et al. 2018; the gold pair counts 9,580 / 9,086 / 14,435 / 1,899 are those of the hub's
google/xtreme ``bucc18.*`` test splits). Random unit vectors of XLM-R's width stand in for the embeddings: the
work of mining depends on the sizes, not on what the vectors say. Each measurement runs in its own process and
reports wall time and peak resident memory (``ru_maxrss``): ``ray_xt.families.retrieval.nearest_neighbours`` (what
BUCC scoring runs) and, where the n x m float32 matrix fits in memory, the dense computation it replaced
(one matrix product, a full sort each way); both must pick the same candidates.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _world import machine, today

# (source sentences, English sentences) of the BUCC 2018 training sets, XTREME's BUCC test
SIZES = {"de": (413_869, 399_337), "fr": (271_874, 369_810), "ru": (460_853, 558_401), "zh": (94_637, 88_860)}
SIDE_BY_SIDE = (20_000, 20_000)  # dense: 1.6 GB of similarities
K = 4


def vectors(n: int, dim: int, seed: int):
    import numpy as np

    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def dense(src, en, k: int):
    """The dense computation: every similarity at once, each side sorted whole."""
    import numpy as np

    sims = src @ en.T
    order = np.argsort(-sims, axis=1)[:, :k]
    top = np.take_along_axis(sims, order, 1)
    en_mean = -np.sort(-sims, axis=0)[:k].mean(0)
    margin = top / ((top.mean(1, keepdims=True) + en_mean[order]) / 2)
    return order[np.arange(len(order)), margin.argmax(1)]


def measure(method: str, n: int, m: int, dim: int) -> None:
    """One measurement in this process: prints time, peak memory and a digest of the picks."""
    import numpy as np

    from ray_xt.families.retrieval import nearest_neighbours

    src, en = vectors(n, dim, 0), vectors(m, dim, 1)
    started = time.perf_counter()
    best = dense(src, en, K) if method == "dense" else nearest_neighbours(src, en, K).best_by_margin()[0]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "picks": int(np.asarray(best, dtype=np.int64).sum() % 1_000_000_007)}))


def run(method: str, n: int, m: int, dim: int) -> dict:
    child = subprocess.run([sys.executable, __file__, "--measure", method, str(n), str(m), "--dim", str(dim)],
                           capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"[bench] {method} {n} x {m} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["zh"], choices=sorted(SIZES))
    parser.add_argument("--dim", type=int, default=768, help="embedding width (XLM-R base 768, large 1024)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.measure:
        method, n, m = opts.measure
        measure(method, int(n), int(m), opts.dim)
        return
    side, pairs = (SIDE_BY_SIDE, opts.pairs) if not opts.smoke else ((3000, 2500), [])
    dim = 64 if opts.smoke else opts.dim
    rows = []
    blockwise, whole = run("blockwise", *side, dim), run("dense", *side, dim)
    if blockwise["picks"] != whole["picks"]:
        raise SystemExit(f"[bench] blockwise and dense picked different candidates: {blockwise} {whole}")
    rows.append({"sizes": f"{side[0]:,} x {side[1]:,}", "blockwise": blockwise, "dense": whole,
                 "time_ratio": round(whole["seconds"] / blockwise["seconds"], 2),
                 "memory_ratio": round(whole["peak_rss_gb"] / blockwise["peak_rss_gb"], 2)})
    for pair in pairs:
        n, m = SIZES[pair]
        rows.append({"pair": f"{pair}-en", "sizes": f"{n:,} x {m:,}", "blockwise": run("blockwise", n, m, dim),
                     "dense_would_need_gb": round(n * m * 4 / 1e9, 1)})
    print(json.dumps({"date": today(), "machine": machine(), "dim": dim, "k": K, "rows": rows}))
    for row in rows:
        b = row["blockwise"]
        dense_cell = (f"{row['dense']['seconds']:.1f} s, {row['dense']['peak_rss_gb']:.2f} GB"
                      if "dense" in row else f"not run: the matrix alone is {row['dense_would_need_gb']} GB")
        ratio = f"**{row['time_ratio']}x** time, {row['memory_ratio']}x memory" if "dense" in row else "-"
        print(f"| {today()} | {row.get('pair', 'random')} {row['sizes']}, d {dim} | {b['seconds']:.1f} s, "
              f"{b['peak_rss_gb']:.2f} GB | {dense_cell} | {ratio} |")


if __name__ == "__main__":
    main()
