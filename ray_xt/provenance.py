"""Examples a study must neither train nor select on because a target's evaluation set was drawn from them.

XQuAD's test set is 1,190 questions of SQuAD v1.1's dev set under their SQuAD ids (``TaskSpec.drawn_from``): a
study that selects its SQuAD model on SQuAD dev, or trains on XTREME's SQuAD translate-dev, would see XQuAD's
questions (or their translations) before it is scored on them. Those examples are held out by id from every
split of the source task the study reads — English and translated, train and dev — counted in the data manifest
and the plan. Matching is by provenance (the ids the sources share), not by text, so a translation or a reworded
copy is caught as well as a verbatim one.
"""

from __future__ import annotations

from pathlib import Path

from ray_xt.config import StudyConfig
from ray_xt.families import family_of
from ray_xt.tasks.registry import TASKS


class ExampleFiles:
    """A data root's (task, split, language) files, each parsed at most once: the checks before a study starts
    read the same files several times (gold, leakage, provenance, held-out counts)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._read: dict[tuple[str, str, str], list[dict]] = {}

    def path(self, task_name: str, split: str, lang: str) -> Path:
        return self.root / TASKS[task_name].path(split, lang)

    def has(self, task_name: str, split: str, lang: str) -> bool:
        return self.path(task_name, split, lang).is_file()

    def read(self, task_name: str, split: str, lang: str) -> list[dict]:
        key = (task_name, split, lang)
        if key not in self._read:
            task = TASKS[task_name]
            self._read[key] = family_of(task).read(self.root, task, split, lang)
        return self._read[key]

    def ids(self, task_name: str, split: str, lang: str) -> set[str]:
        """The example ids of a file (none where it is absent)."""
        if not self.has(task_name, split, lang):
            return set()
        return {str(e["id"]) for e in self.read(task_name, split, lang) if "id" in e}


def held_out_ids(cfg: StudyConfig, files: ExampleFiles) -> dict[str, frozenset[str]]:
    """Per source task, the ids of the examples the study's targets evaluate on (every language's evaluation
    split: XQuAD's ids are the same in all of them)."""
    held: dict[str, set[str]] = {}
    for name in cfg.target.tasks:
        target = TASKS[name]
        if not target.drawn_from:
            continue
        ids: set[str] = set()
        for lang in cfg.languages_for(name):
            ids |= files.ids(name, target.eval_split_for(lang), lang)
        for source in target.drawn_from:
            held.setdefault(source, set()).update(ids)
    return {source: frozenset(ids) for source, ids in held.items()}


def held_out_counts(files: ExampleFiles, needs: list[tuple[str, str, list[str]]],
                    held: dict[str, frozenset[str]]) -> dict[tuple[str, str, str], int]:
    """How many examples of each (task, split, language) the study reads are held out."""
    counts = {}
    for task_name, split, langs in needs:
        ids = held.get(task_name)
        if not ids:
            continue
        for lang in langs:
            if files.has(task_name, split, lang):
                n = sum(str(e.get("id")) in ids for e in files.read(task_name, split, lang))
                if n:
                    counts[(task_name, split, lang)] = n
    return counts


def unprovable_problems(files: ExampleFiles, needs: list[tuple[str, str, list[str]]],
                        held: dict[str, frozenset[str]]) -> list[str]:
    """Translated files of a source whose English split holds a target's evaluation examples, but whose ids are not
    the English file's: which of their examples are translations of the held-out ones cannot be known, so they are
    refused (XTREME's SQuAD translate-dev is a translation of SQuAD v1.1 dev, XQuAD's questions included)."""
    problems = []
    for task_name, split, langs in needs:
        ids = held.get(task_name)
        if not ids:
            continue
        english = files.ids(task_name, split, "en")
        if not english & ids:
            continue  # nothing of the evaluation was drawn from this split
        for lang in (lang for lang in langs if lang != "en"):
            own = files.ids(task_name, split, lang)
            if own and not own & english:
                problems.append(
                    f"task {task_name!r} {split} {lang}: {files.path(task_name, split, lang)} is a translation of "
                    f"{task_name}'s English {split} set, which holds {len(english & ids)} examples of the study's "
                    "evaluation, but its ids are not the English file's, so those examples cannot be held out: put "
                    f"a {split} file of your own there (e.g. `ray-xt translate` of examples outside the evaluation), "
                    "or leave the language out of intermediate.languages")
    return problems


def drawn_into(task_name: str, cfg: StudyConfig) -> list[str]:
    """The study's targets whose evaluation sets were drawn from ``task_name``."""
    return [t for t in cfg.target.tasks if task_name in TASKS[t].drawn_from]
