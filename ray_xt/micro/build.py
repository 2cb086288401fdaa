"""Builds (or finds cached) the micro world: files, tokenizer and MLM-pretrained scales.

Everything is keyed by a hash of what determines it, so a second build is a few
file checks.  A folder is complete only once its ``.complete`` marker exists:
an interrupted build is redone, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ray_xt.micro.pretrain import PretrainSpec, pretrain_mlm, train_tokenizer
from ray_xt.micro.world import WorldSpec, write_corpus, write_profiles, write_tasks
from ray_xt.storage import default_cache_dir

# Bump when the generator's output changes for the same spec, so caches are not reused wrongly:
# CORPUS_VERSION for corpus/tokenizer/models, TASKS_VERSION for task files only (CORPUS_VERSION 9: the tokenizer's
# seed pieces include whole words, see pretrain.seed_pieces).
# PRETRAIN_VERSION for the models alone: bumped when the training loop's arithmetic changes (2: the vocabulary
# head on masked positions only, the same loss to float rounding but not the same bytes).
CORPUS_VERSION = 10
TASKS_VERSION = 8
PRETRAIN_VERSION = 2
MARKER = ".complete"


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class MicroWorld:
    root: Path  # XTREME-layout task data (download/, intermediate/, labels/)
    tokenizer_dir: Path
    model_dirs: dict[str, Path]

    @property
    def corpus_files(self) -> list[Path]:
        return sorted((self.root.parent / "corpus").glob("*.txt"))


def _complete(path: Path) -> bool:
    return (path / MARKER).exists()


def _finish(tmp: Path, final: Path) -> None:
    (tmp / MARKER).write_text("ok\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def corpus_key(spec: WorldSpec, vocab_size: int) -> str:
    """What the corpus, tokenizer and pretrained models depend on (not the task files)."""
    return _digest({"version": CORPUS_VERSION, "seed": spec.seed, "languages": spec.languages,
                    "corpus_sentences": spec.corpus_sentences, "vocab_size": vocab_size})


def tasks_key(spec: WorldSpec) -> str:
    """What the task files depend on, where they are written included: a layout that follows upstream anew (as
    TyDiQA-GoldP's file names did) rebuilds the files in the new place without changing their content, so
    finished stages (keyed by TASKS_VERSION) stay valid."""
    from ray_xt.tasks.registry import TASKS

    layout = sorted(TASKS[t].path(s, "en") for t in spec.tasks if t in TASKS for s in ("train", "dev", "test"))
    return _digest({"version": TASKS_VERSION, "world": asdict(spec), "layout": layout})


def model_key(spec: PretrainSpec) -> str:
    """What a pretrained scale depends on beyond the corpus: its (resolved) spec and the training loop."""
    return _digest({**spec.key_fields(), "pretrain_version": PRETRAIN_VERSION})


def build_world(spec: WorldSpec, vocab_size: int, cache_dir: Path) -> tuple[Path, Path]:
    """Corpus, tokenizer and task files; returns (task data root, tokenizer dir).

    Layout: ``micro/corpus-<key>/{corpus,tokenizer,models}`` with one
    ``tasks-<key>/`` per task spec inside, so growing a task set or a training
    set never retrains the tokenizer or the models.
    """
    root, tok = _build_corpus(spec, vocab_size, cache_dir)
    _build_tasks(spec, root)
    return root, tok


def _build_corpus(spec: WorldSpec, vocab_size: int, cache_dir: Path) -> tuple[Path, Path]:
    """Corpus and tokenizer (what pretraining needs); returns (task data root to be, tokenizer dir)."""
    base = cache_dir / "micro" / f"corpus-{corpus_key(spec, vocab_size)}"
    corpus, tok, root = base / "corpus", base / "tokenizer", base / f"tasks-{tasks_key(spec)}"
    if not _complete(corpus):
        tmp = base / "corpus.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        write_corpus(spec, tmp)
        _finish(tmp, corpus)
    if not _complete(tok):
        tmp = base / "tokenizer.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        train_tokenizer(sorted(corpus.glob("*.txt")), tmp, vocab_size, spec.seed)
        _finish(tmp, tok)
    return root, tok


def _build_tasks(spec: WorldSpec, root: Path, workers: int | None = None) -> None:
    """The task files, unless complete; by up to 2 processes unless ``workers`` says otherwise."""
    if not _complete(root):
        tmp = root.with_name(f"{root.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        write_tasks(spec, tmp, workers=workers or min(2, os.cpu_count() or 1))
        write_profiles(spec, tmp)
        (tmp / "world.json").write_text(spec.to_json() + "\n")
        _finish(tmp, root)


def _pretrain_into(tokenizer_dir: Path, corpus: list[Path], spec: PretrainSpec, final: Path, progress: bool) -> dict:
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    stats = pretrain_mlm(tokenizer_dir, corpus, spec, tmp, progress=progress)
    (tmp / "pretrain_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    _finish(tmp, final)
    return stats


def build_micro(
    spec: WorldSpec, vocab_size: int, scales: dict[str, PretrainSpec], cache_dir: Path | None = None,
    use_ray: bool = False, progress: bool = True,
) -> MicroWorld:
    """Build what is missing; pretraining of several scales runs as parallel Ray tasks when use_ray."""
    cache_dir = cache_dir or default_cache_dir()
    root, tok = _build_corpus(spec, vocab_size, cache_dir)
    corpus = sorted((root.parent / "corpus").glob("*.txt"))
    scales = {name: p.resolved() for name, p in scales.items()}  # the key says whether bf16 was used
    model_dirs = {name: root.parent / "models" / f"{name}-{model_key(p)}" for name, p in scales.items()}
    # Largest first: with more scales than cores, the small ones fill in behind the big one.
    missing = dict(sorted(((name, p) for name, p in scales.items() if not _complete(model_dirs[name])),
                          key=lambda item: -item[1].cost()))
    if missing and use_ray and len(missing) > 1:
        import ray

        from ray_xt.local_ray import start_ray

        start_ray(logging_level="ERROR")  # only a cold build pays for starting Ray (a no-op when connected)
        remote = ray.remote(num_cpus=1)(_pretrain_into)
        (largest, largest_spec), *rest = missing.items()
        # The largest scale is the build's critical path: it starts as soon as the tokenizer exists, and this
        # process writes the task files (one process) on the other core meanwhile; the smaller scales follow.
        refs = [remote.remote(tok, corpus, largest_spec, model_dirs[largest], progress)]
        try:
            _build_tasks(spec, root, workers=1)
        except BaseException:
            ray.cancel(refs[0], force=True)  # its partial folder is redone next time, never used half-built
            raise
        refs += [remote.remote(tok, corpus, p, model_dirs[n], progress) for n, p in rest]
        ray.get(refs)
    else:
        _build_tasks(spec, root)
        for name, p in missing.items():
            _pretrain_into(tok, corpus, p, model_dirs[name], progress)
    return MicroWorld(root=root, tokenizer_dir=tok, model_dirs=model_dirs)
