"""Task files -> examples -> cached features, shared by every trial of a study.

Sources: an XTREME-layout root (the micro world writes one; a real
``download_data.sh`` folder is read the same way) or the HF hub
(``ray_xt.sources``).  Features are tokenised once per (task, split, languages,
tokenizer, max_len, stride) and stored with ``datasets.save_to_disk`` as a
DatasetDict: ``features`` (the family's columns) and ``examples`` (one JSON
record per example, for prediction and scoring); trials memory-map them with
``load_from_disk``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ray_xt.families import DataError, family_of
from ray_xt.storage import materialize, write_text
from ray_xt.tasks.registry import TaskSpec

__all__ = ["DataError", "FeatureCache", "read_examples", "source_files", "task_file", "tokenizer_fingerprint",
           "write_examples"]


def task_file(root: Path, task: TaskSpec, split: str, lang: str) -> Path:
    """The task's file for (split, language); a clear DataError naming it if missing."""
    from ray_xt.families.base import require

    return require(root, task, split, lang)


def source_files(root: Path, task: TaskSpec, split: str, lang: str) -> list[Path]:
    """Every file a (task, split, language) is read from (retrieval tasks have several; BUCC's test gold only where
    it exists: xtreme's download_data.sh deletes it, and the test split is predicted, not scored)."""
    main = Path(root) / task.path(split, lang)
    if task.name == "tatoeba":
        return [main, main.with_suffix(".eng")]
    if task.name == "bucc2018":
        gold = main.with_suffix(".gold")
        return [main, main.with_suffix(".en")] + ([gold] if split != "test" or gold.is_file() else [])
    return [main]


def read_examples(root: Path, task: TaskSpec, split: str, langs: list[str]) -> list[dict]:
    """One language's examples, or a size-matched mixture: example i comes from language langs[i % len(langs)].

    Translations render the same examples in the same order, so each example is
    used once, in one language, and the mixture has as many examples as English.
    """
    family = family_of(task)
    per_lang = [family.read(root, task, split, lang) for lang in langs]
    if len(per_lang) == 1:
        return per_lang[0]
    if not family.parallel:  # text in several languages (the mlm corpus): all of it
        return [row for rows in per_lang for row in rows]
    n = min(len(rows) for rows in per_lang)
    return [per_lang[i % len(langs)][i] for i in range(n)]


def tokenizer_fingerprint(tokenizer_dir: Path | str) -> str:
    path = Path(tokenizer_dir) / "tokenizer.json"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return hashlib.sha256(str(tokenizer_dir).encode()).hexdigest()[:12]  # a hub id names a fixed tokenizer


if TYPE_CHECKING:
    from ray_xt.storage import StudyStorage


@dataclass
class FeatureCache:
    """Arrow feature store on the study's storage; counts hits so reuse can be measured."""

    directory: Path  # written here first
    storage: StudyStorage | None = None  # a URI study storage gets every entry once it is whole
    hits: int = 0
    misses: int = 0
    _tokenizers: dict = field(default_factory=dict, repr=False)

    def _tokenizer(self, tokenizer_dir: str):
        if tokenizer_dir not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[tokenizer_dir] = AutoTokenizer.from_pretrained(tokenizer_dir)
        return self._tokenizers[tokenizer_dir]

    def features(
        self, root: Path, task: TaskSpec, split: str, langs: list[str], tokenizer_dir: str, max_len: int,
        max_examples: int | None = None, stride: int = 128, labels: list[str] | None = None,
        exclude_ids: frozenset[str] = frozenset(),
    ) -> str:
        """Where the DatasetDict {features, examples} for these inputs lives (a folder, or a URI on URI storage),
        tokenising only on a miss. ``exclude_ids``: examples left out (ray_xt.provenance: drawn into a target's
        evaluation set)."""
        family = family_of(task)
        for lang in langs:  # a clear error before anything is computed
            task_file(root, task, split, lang)
            for path in source_files(root, task, split, lang)[1:]:
                if not path.is_file():
                    raise DataError(f"task {task.name!r}, split {split!r}, language {lang!r}: expected file {path} "
                                    "beside the first one (xtreme's download_data.sh layout)")
        labels = list(labels) if labels is not None else family.label_space(root, task)
        files = [p for lang in langs for p in source_files(root, task, split, lang)]
        key_payload = {
            "task": task.name, "family": family.name, "split": split, "langs": langs,
            "tokenizer": tokenizer_fingerprint(tokenizer_dir), "max_len": max_len, "stride": stride,
            "max_examples": max_examples, "labels": labels,
            **({"cap": "per side"} if family.name == "retrieval" and max_examples is not None else {}),
            "files": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
            **({"exclude": hashlib.sha256("\n".join(sorted(exclude_ids)).encode()).hexdigest()[:16]}
               if exclude_ids else {}),
        }
        key = hashlib.sha256(json.dumps(key_payload, sort_keys=True).encode()).hexdigest()[:16]
        out = self.directory / f"{task.name}-{split}-{'+'.join(langs) if len(langs) < 4 else len(langs)}-{key}"
        if (out / "dataset_dict.json").exists():
            self.hits += 1
            return self._published(out)
        if self.storage is not None and self.storage.remote and self.storage.published(out):
            self.hits += 1  # tokenised by a driver on another node
            return self.storage.location_of(out)
        self.misses += 1
        from datasets import Dataset, DatasetDict

        examples = read_examples(root, task, split, langs)
        if exclude_ids:
            examples = [e for e in examples if str(e.get("id")) not in exclude_ids]
        if max_examples is not None:
            examples = cap_examples(examples, max_examples)
        columns = family.featurize(examples, self._tokenizer(tokenizer_dir), max_len, stride, labels)
        data = DatasetDict({
            "features": Dataset.from_dict(columns),
            "examples": Dataset.from_dict({"json": [json.dumps(e, ensure_ascii=False) for e in examples]}),
        })
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        data.save_to_disk(str(tmp))
        (tmp / "labels.json").write_text(json.dumps(labels) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return self._published(out)

    def _published(self, out: Path) -> str:
        if self.storage is None or not self.storage.remote:
            return str(out)
        return self.storage.location_of(out) if self.storage.published(out) else self.storage.publish(out)


def cap_examples(examples: list[dict], n: int) -> list[dict]:
    """The first n examples; retrieval data keep n sentences of each side (a source sentence whose English
    partner falls outside loses its gold pair, so the cap cannot count it as missed)."""
    if not examples or "side" not in examples[0]:
        return examples[:n]
    src = [e for e in examples if e["side"] == "src"][:n]
    en = [e for e in examples if e["side"] == "en"][:n]
    kept = {e["id"] for e in en}
    return [{**e, "gold": e["gold"] if e["gold"] in kept else ""} for e in src] + en


def write_examples(path: Path, task: TaskSpec, examples: list[dict]) -> None:
    """Examples in the family's file format (the one the loaders read): translations, hub downloads. Written
    whole or not at all (through a ``.partial`` file): a present file is taken as complete and never refetched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if task.family == "pair_classification":
        clean = lambda s: s.replace("\t", " ").replace("\n", " ")  # noqa: E731
        text = "".join(f"{clean(e['sentence1'])}\t{clean(e['sentence2'])}\t{e['label']}\n" for e in examples)
    elif task.family == "multiple_choice":
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
    elif task.family == "span_qa":
        paragraphs = [{"context": e["context"], "qas": [{"id": e["id"], "question": e["question"],
                                                          "answers": e["answers"]}]} for e in examples]
        text = json.dumps({"version": "1.1", "data": [{"title": task.name, "paragraphs": paragraphs}]},
                          ensure_ascii=False)
    elif task.family == "tagging":
        text = "".join("".join(f"{w}\t{t}\n" for w, t in zip(e["tokens"], e["tags"])) + "\n" for e in examples)
    else:
        raise DataError(f"no single-file format for {task.family} task {task.name!r}")
    write_text(str(path), text)


def load_features(path: Path | str):
    """(features as {column: list}, examples, labels) from a FeatureCache entry.

    Columns come back as Python lists: batching and prediction index single rows, which is slow on Arrow.
    """
    from datasets import load_from_disk

    path = materialize(str(path))  # an entry on URI storage: a node-local copy
    data = load_from_disk(str(path))
    examples = [json.loads(x) for x in data["examples"]["json"]]
    labels = json.loads((Path(path) / "labels.json").read_text())
    return data["features"][:], examples, labels
