"""The `mlm` condition's text: ``intermediate.mlm_lines`` lines per target language, written to
``<data root>/mlm/train-<lang>.txt`` once, from the micro world's monolingual corpora or from a hub text corpus
(``intermediate.mlm_corpus``, through the same ``datasets.load_dataset`` call as the tasks, or the mirror).

A hub corpus (or its mirror: a snapshot of wikimedia/wikipedia holds ~300 language dumps) is streamed, never
converted whole, and sampled: its documents in a random order (``IterableDataset.shuffle`` with the study's
``search.seed``: shards shuffled, then a buffer of ``SHUFFLE_BUFFER`` documents), each document's non-empty lines
taken until there are enough. A dump's first lines are its first articles (alphabetical or by id), not a sample of
the language. A micro world's corpus is small: its lines are sampled at random with the same seed.

Beside each text file, ``train-<lang>.json`` records what it holds (lines, seed, source): a study asking for other
lines or another seed rewrites it rather than training on another study's sample."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from ray_xt.config import StudyConfig
from ray_xt.problem_list import Problem, error_cause
from ray_xt.tasks.registry import MLM_CORPUS, TASKS

SHUFFLE_BUFFER = 10_000  # documents drawn from at a time: what a streamed shuffle holds in memory


def _first_lines(texts, limit: int) -> list[str]:
    lines: list[str] = []
    for text in texts:
        lines += [line.strip() for line in str(text).splitlines() if line.strip()]
        if len(lines) >= limit:
            break
    return lines[:limit]


def _micro_lines(root: Path, lang: str, limit: int, seed: int) -> tuple[list[str], dict]:
    source = Path(root).parent / "corpus" / f"{lang}.txt"  # the world's monolingual corpus beside its task files
    with source.open(encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    sample = random.Random(seed).sample(lines, min(limit, len(lines)))
    return sample, {"kind": "micro world corpus", "file": str(source), "sample": {"seed": seed}}


def _sample_of(cfg: StudyConfig) -> dict:
    """What a text file must hold for this study: its line count and the seed its lines were sampled with."""
    return {"lines": cfg.intermediate.mlm_lines, "seed": cfg.search.seed,
            "corpus": cfg.intermediate.mlm_corpus.model_dump(mode="json") if cfg.intermediate.mlm_corpus else None}


def _hub_lines(cfg: StudyConfig, lang: str, mirror: Path | None) -> tuple[list[str], dict]:
    from datasets import load_dataset

    corpus = cfg.intermediate.mlm_corpus
    assert corpus is not None
    path = str(mirror / corpus.dataset) if mirror else corpus.dataset
    config = corpus.config.format(lang=lang)
    rows = load_dataset(path, config, split=corpus.split, streaming=True)  # only the documents read
    sampled = rows.shuffle(seed=cfg.search.seed, buffer_size=SHUFFLE_BUFFER)
    lines = _first_lines((row[corpus.column] for row in sampled), cfg.intermediate.mlm_lines)
    snapshot = {}
    if mirror is not None:
        from ray_xt.snapshots import snapshot_of

        snapshot = {"path": path, **snapshot_of(Path(path)).origin()}
    return lines, {"kind": "hub_mirror" if mirror else "hub", "dataset": corpus.dataset, "config": config,
                   "split": corpus.split, "revision": "main",
                   "sample": {"seed": cfg.search.seed, "shuffle_buffer": SHUFFLE_BUFFER}, **snapshot}


def materialize_corpus(cfg: StudyConfig, root: Path, langs: list[str], mirror: Path | None,
                       on_written: Callable[[dict], None] | None = None) -> list[Problem]:
    """Writes the missing text files; returns the problems (one line each), empty when all is there."""
    problems = []
    for lang in langs:
        path = Path(root) / TASKS[MLM_CORPUS].path("train", lang)
        sidecar = path.with_suffix(".json")
        if path.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == _sample_of(cfg):
            continue
        try:
            if cfg.data.source == "micro":
                lines, source = _micro_lines(root, lang, cfg.intermediate.mlm_lines, cfg.search.seed)
            else:
                lines, source = _hub_lines(cfg, lang, mirror)
        except Exception as err:  # noqa: BLE001 - offline, unknown config, missing column: named with the fix
            corpus = cfg.intermediate.mlm_corpus
            problems.append(Problem(
                cause=f"could not read the MLM corpus ({error_cause(err)})",
                item=f"intermediate.mlm_corpus {lang} "
                     f"({corpus.dataset + ' config ' + corpus.config.format(lang=lang) if corpus else 'the corpus'})",
                fix=f"make it reachable (data.hub_mirror) or put {cfg.intermediate.mlm_lines} lines of text per "
                    f"language in place, e.g. {path}", source=corpus.dataset if corpus else ""))
            continue
        if not lines:
            problems.append(Problem(cause="no text lines found", item=f"intermediate.mlm_corpus {lang}"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
        sidecar.write_text(json.dumps(_sample_of(cfg)), encoding="utf-8")
        if on_written:
            on_written({"task": MLM_CORPUS, "split": "train", "lang": lang, "files": [str(path)], "source": source})
    return problems
