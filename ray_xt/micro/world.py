"""Writes the micro world to disk: corpus per language and tasks in XTREME file formats."""

from __future__ import annotations

import csv
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ray_xt.micro.languages import LANGUAGES, Renderer
from ray_xt.micro.latent import LatentSampler, Vocabulary
from ray_xt.micro.qa import commonsense, completion, multiple_choice, qa_example, squad_document
from ray_xt.micro.tasks import ALL_TASKS, MC_TASKS, PAIR_TASKS, QA_TASKS, RETRIEVAL_TASKS, TAGGING_TASKS
from ray_xt.tasks.registry import TASKS


@dataclass(frozen=True)
class WorldSpec:
    """Everything that determines the world's bytes; its hash names the cache folder."""

    seed: int = 13
    languages: tuple[str, ...] = ("en", "qca", "qcy", "qso", "qgr", "qka", "qhy")
    corpus_sentences: int = 6000  # monolingual sentences per language
    train_size: int = 8000  # English training examples per task (and per translation)
    dev_size: int = 300  # per language
    test_size: int = 300  # per language
    translation_noise: float = 0.05  # word error rate of the "machine-translated" training data
    tasks: tuple[str, ...] = field(default_factory=lambda: ALL_TASKS)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


TWO_CLAUSE_RATE = 0.5  # web-text lines with a second clause (see latent.CONTINUATION_RATE)


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)


def write_corpus(spec: WorldSpec, out: Path) -> dict[str, Path]:
    """Monolingual text: each language gets its own latent sentences (never parallel), written as its web text
    (with the profile's code-switching; task data never code-switches)."""
    vocab = Vocabulary()
    paths = {}
    for code in spec.languages:
        sampler = LatentSampler(random.Random(f"{spec.seed}-corpus-{code}"), vocab)
        renderer = Renderer(LANGUAGES[code], vocab, spec.seed).web_text(random.Random(f"{spec.seed}-web-{code}"))
        lines = []
        for _ in range(spec.corpus_sentences):
            clauses = [sampler.clause()]
            if sampler.rng.random() < TWO_CLAUSE_RATE:
                clauses.append(sampler.continuation(clauses[0]))
            lines.append(renderer.render(clauses))
        path = out / f"{code}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths[code] = path
    return paths


def write_tasks(spec: WorldSpec, out: Path, workers: int = 1) -> None:
    """Every task's files. Each task draws from its own seeded generator, so tasks can be written by
    ``workers`` processes at once with the same bytes as one after another."""
    if workers <= 1:
        for task in spec.tasks:
            write_task(spec, task, out)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # the slowest first (multiple choice renders 4-5 sentences per example), so the workers finish together
    order = sorted(spec.tasks, key=lambda t: (t not in MC_TASKS, t not in QA_TASKS, t))
    # spawn, not fork: the caller may be a process with torch's threads running
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(write_task, [spec] * len(order), order, [out] * len(order)))
    except BrokenProcessPool:
        # A spawned worker re-imports the caller's main script; one that builds a world at import time (no
        # ``if __name__ == "__main__":``) makes each worker try to start its own pool, and it dies. Same bytes
        # either way (each task has its own generator), so finish here, only slower.
        logging.getLogger(__name__).warning(
            "a task-writing worker process died (is the calling script's work under "
            "`if __name__ == \"__main__\":`?); writing the micro world's task files in this process instead")
        for task in order:
            write_task(spec, task, out)


def write_task(spec: WorldSpec, task: str, out: Path) -> None:
    if task in PAIR_TASKS:
        write_pair_task(spec, task, out)
    elif task in TAGGING_TASKS:
        write_tagging_task(spec, task, out)
    elif task == "tatoeba":
        write_tatoeba(spec, out)
    elif task == "bucc2018":
        write_bucc(spec, out)
    elif task in QA_TASKS:
        write_qa_task(spec, task, out)
    elif task in MC_TASKS:
        write_mc_task(spec, task, out)
    else:
        raise ValueError(f"unknown micro-world task {task!r}; known: {list(ALL_TASKS)}")


def _renderers(spec: WorldSpec) -> dict[str, Renderer]:
    vocab = Vocabulary()
    return {code: Renderer(LANGUAGES[code], vocab, spec.seed) for code in spec.languages}


def _sentences(sampler: LatentSampler, n: int) -> list[list]:
    return [[sampler.clause() for _ in range(sampler.rng.choice((1, 1, 2)))] for _ in range(n)]


def write_tagging_task(spec: WorldSpec, task: str, out: Path) -> None:
    """CoNLL-style TSV as XTREME's udpos/panx files: token<TAB>tag lines, a blank line between sentences.

    Translations carry no noise: a dropped word would misalign gold tags.
    """
    annotation = TAGGING_TASKS[task]
    layout = TASKS[task]
    sampler = LatentSampler(random.Random(f"{spec.seed}-task-{task}"), Vocabulary())
    splits = {"train": _sentences(sampler, spec.train_size), "dev": _sentences(sampler, spec.dev_size),
              "test": _sentences(sampler, spec.test_size)}
    for code, renderer in _renderers(spec).items():
        for split, sentences in splits.items():
            if split == "train" and code != "en" and layout.role == "target":
                continue  # XTREME target tasks train on English only
            blocks = []
            for clauses in sentences:
                toks = renderer.tokens(clauses)
                tags = [t.supertag if annotation == "supertag" else getattr(t, annotation) for t in toks]
                blocks.append([(t.text, tag) for t, tag in zip(toks, tags)])
            if split == "test":
                _write_conll(out / layout.path("test", code), blocks, with_tags=False)
                _write_conll(out / "labels" / task / f"test-{code}.tsv", blocks, with_tags=True)
            else:
                _write_conll(out / layout.path(split, code), blocks, with_tags=True)


def _write_conll(path: Path, blocks: list[list[tuple[str, str]]], with_tags: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for block in blocks:
        lines += [f"{w}\t{t}" if with_tags else w for w, t in block]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def write_tatoeba(spec: WorldSpec, out: Path) -> None:
    """LASER's Tatoeba naming: tatoeba.<lang>-eng.<lang> and .eng, aligned line by line."""
    renderers = _renderers(spec)
    for code in spec.languages:
        if code == "en":
            continue
        sampler = LatentSampler(random.Random(f"{spec.seed}-tatoeba-{code}"), Vocabulary())
        sentences = _sentences(sampler, spec.test_size)
        directory = out / RETRIEVAL_TASKS["tatoeba"]
        directory.mkdir(parents=True, exist_ok=True)
        for side, renderer in ((code, renderers[code]), ("eng", renderers["en"])):
            lines = [renderer.render(c) for c in sentences]
            (directory / f"tatoeba.{code}-eng.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        # submission labels: the English line each source line translates (aligned files: its own index)
        _write_tsv(out / "labels" / "tatoeba" / f"test-{code}.tsv", [[str(i)] for i in range(len(sentences))])


def write_bucc(spec: WorldSpec, out: Path) -> None:
    """BUCC 2018 layout: <lang>-en.<split>.{<lang>,en,gold}; half the sentences have a translation on the other side."""
    renderers = _renderers(spec)
    directory = out / RETRIEVAL_TASKS["bucc2018"]
    directory.mkdir(parents=True, exist_ok=True)
    for code in spec.languages:
        if code == "en":
            continue
        for split, size in (("dev", spec.dev_size), ("test", spec.test_size)):
            rng = random.Random(f"{spec.seed}-bucc-{code}-{split}")
            sampler = LatentSampler(rng, Vocabulary())
            shared = _sentences(sampler, size // 2)
            only_src, only_en = _sentences(sampler, size - size // 2), _sentences(sampler, size - size // 2)
            src = [(i, renderers[code].render(c)) for i, c in enumerate(shared + only_src)]
            en = [(i, renderers["en"].render(c)) for i, c in enumerate(shared + only_en)]
            rng.shuffle(src)
            rng.shuffle(en)
            src_ids = {i: f"{code}-{n:09d}" for n, (i, _) in enumerate(src)}
            en_ids = {i: f"en-{n:09d}" for n, (i, _) in enumerate(en)}
            (directory / f"{code}-en.{split}.{code}").write_text(
                "".join(f"{src_ids[i]}\t{s}\n" for i, s in src), encoding="utf-8")
            (directory / f"{code}-en.{split}.en").write_text(
                "".join(f"{en_ids[i]}\t{s}\n" for i, s in en), encoding="utf-8")
            gold = sorted(f"{src_ids[i]}\t{en_ids[i]}\n" for i in range(len(shared)))
            (directory / f"{code}-en.{split}.gold").write_text("".join(gold), encoding="utf-8")
            if split == "test":
                labels = out / "labels" / "bucc2018" / f"test-{code}.tsv"
                labels.parent.mkdir(parents=True, exist_ok=True)
                labels.write_text("".join(gold), encoding="utf-8")


def qa_file(task: str, split: str, lang: str) -> str:
    """Where xtreme's download_data.sh leaves each QA file (relative to the data root)."""
    return TASKS[task].path(split, lang)


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=None) + "\n", encoding="utf-8")


def write_qa_task(spec: WorldSpec, task: str, out: Path) -> None:
    """SQuAD v1.1 JSON: squad (train+dev, translated), xquad (one evaluation file per language),
    mlqa (dev+test per language), tydiqa (English train, dev per language)."""
    sampler = LatentSampler(random.Random(f"{spec.seed}-task-{task}"), Vocabulary())
    splits = {"xquad": ("test",), "mlqa": ("dev", "test"), "tydiqa": ("train", "dev"), "squad": ("train", "dev")}[task]
    sizes = {"train": spec.train_size, "dev": spec.dev_size, "test": spec.test_size}
    latent = {split: [qa_example(sampler) for _ in range(sizes[split])] for split in splits}
    for code, renderer in _renderers(spec).items():
        for split, questions in latent.items():
            if split == "train" and code != "en" and task != "squad":
                continue  # target tasks train on English only; squad is the translated intermediate task
            document = squad_document(renderer, questions, f"{task}-{split}-{code}")
            _write_json(out / qa_file(task, split, code), document)
            if split == {"tydiqa": "dev"}.get(task, "test"):  # XTREME scores TyDiQA-GoldP's dev set as its test
                _write_json(out / "labels" / task / f"test-{code}.json", document)


def mc_file(task: str, split: str, lang: str) -> str:
    return TASKS[task].path(split, lang)


def write_mc_task(spec: WorldSpec, task: str, out: Path) -> None:
    """Multiple choice as JSON lines: {id, context, question, choices, label}; translated like all intermediates."""
    n_choices, kind = MC_TASKS[task]
    for code, renderer in _renderers(spec).items():
        for split, size in (("train", spec.train_size), ("dev", spec.dev_size)):
            # the same seed in every language: the same latent examples, rendered per language
            rng = random.Random(f"{spec.seed}-task-{task}-{split}")
            sampler = LatentSampler(rng, Vocabulary())
            rows = []
            for i in range(size):
                qid = f"{task}-{split}-{i}"
                if kind == "completion":
                    rows.append(completion(renderer, sampler, n_choices, qid))
                elif kind == "knowledge":
                    rows.append(commonsense(renderer, sampler, n_choices, qid))
                else:
                    rows.append(multiple_choice(renderer, qa_example(sampler), n_choices, rng, qid))
            path = out / mc_file(task, split, code)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_pair_task(spec: WorldSpec, task: str, out: Path) -> None:
    """Pair-classification tasks in XTREME's layout: {train,dev,test}-<lang>.tsv (+ labels/ for test)."""
    vocab = Vocabulary()
    renderers = _renderers(spec)
    task_spec = PAIR_TASKS[task]
    sampler = LatentSampler(random.Random(f"{spec.seed}-task-{task}"), vocab)
    splits = {
        name: [task_spec.generator(sampler) for _ in range(size)]
        for name, size in (("train", spec.train_size), ("dev", spec.dev_size), ("test", spec.test_size))
    }
    layout = TASKS[task]
    for code, renderer in renderers.items():
        noise_rng = random.Random(f"{spec.seed}-noise-{task}-{code}")
        for split, examples in splits.items():
            # English training data is the original; other languages get noisy
            # "translations" of the same latent examples (the translate-train data).
            noise = spec.translation_noise if (split == "train" and code != "en") else 0.0
            rows = [
                [renderer.render(ex.first, noise, noise_rng), renderer.render(ex.second, noise, noise_rng), ex.label]
                for ex in examples
            ]
            if split == "test":
                _write_tsv(out / layout.path("test", code), [r[:2] for r in rows])
                _write_tsv(out / "labels" / task / f"test-{code}.tsv", [[r[2]] for r in rows])
            else:
                _write_tsv(out / layout.path(split, code), rows)


def write_profiles(spec: WorldSpec, out: Path) -> None:
    lines = ["# Micro-world languages", ""] + [f"- {LANGUAGES[c].describe()}" for c in spec.languages]
    (out / "LANGUAGES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
