"""The real data from the HF hub, written into the same XTREME layout the local loaders read.

``materialize(tasks, languages, root)`` downloads each (task, split, language) with
``datasets.load_dataset`` (hub ids and configs in the task registry), converts the
rows to the family's file format and writes them where xtreme's
``download_data.sh`` would have put them. Files already there are kept, so a
machine with a local download never touches the hub, and an offline machine gets
one error that names every missing task, its hub id and the local path to fill.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ray_xt.data import write_examples
from ray_xt.families import DataError
from ray_xt.tasks.registry import TASKS, TaskSpec

NLI_LABELS = ("entailment", "neutral", "contradiction")  # the id order of GLUE MNLI, XNLI and ANLI on the hub


class HubUnavailable(DataError):
    pass


def hub_config(task: TaskSpec, lang: str) -> str | None:
    hub = task.hub
    if hub is None or hub.config is None:
        return None
    name = hub.language_names.get(lang, lang) if hub.language_names else lang
    if task.name == "tatoeba":
        from ray_xt.tasks.registry import TATOEBA_ISO3

        name = TATOEBA_ISO3.get(lang, lang)
    return hub.config.format(lang=name)


def load_hub_rows(task: TaskSpec, split: str, lang: str) -> list[dict]:
    """Rows of one (task, split, language) from the hub, in the hub's own schema."""
    from datasets import load_dataset

    if task.hub is None:
        raise HubUnavailable(f"task {task.name!r} is not on the HF hub (licence or missing gold data): "
                             f"put its files under data.root at {task.path(split, lang)}")
    hub_split = task.hub.splits.get(split)
    if hub_split is None:
        raise HubUnavailable(f"task {task.name!r} has no {split!r} split on the hub ({task.hub.dataset})")
    rows = load_dataset(task.hub.dataset, hub_config(task, lang), split=hub_split)
    if task.name == "tydiqa":  # one config for all languages; the id starts with the language name
        from ray_xt.tasks.registry import UD_NAMES

        prefix = {"bn": "bengali", "sw": "swahili"}.get(lang, UD_NAMES.get(lang, lang).lower())
        rows = rows.filter(lambda r: r["id"].startswith(prefix))
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- hub schema -> ray_xt file format

def to_pair_examples(task: TaskSpec, rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        if task.name == "qqp":
            a, b = r["question1"], r["question2"]
        elif "sentence1" in r:
            a, b = r["sentence1"], r["sentence2"]
        else:
            a, b = r["premise"], r["hypothesis"]
        label = r["label"]
        if label is None or label < 0:
            continue  # hub test splits hide labels as -1
        name = NLI_LABELS[label] if task.labels == NLI_LABELS else str(label)
        out.append({"sentence1": a, "sentence2": b, "label": name})
    return out


def to_choice_rows(task: TaskSpec, rows: list[dict]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if task.name == "hellaswag":
            row = {"context": r["ctx"], "question": "", "choices": r["endings"], "label": r["label"]}
        elif task.name == "cosmosqa":
            row = {"context": r["context"], "question": r["question"],
                   "choices": [r[f"answer{k}"] for k in range(4)], "label": r["label"]}
        elif task.name == "commonsenseqa":
            row = {"context": "", "question": r["question"], "choices": r["choices"]["text"],
                   "label": r["choices"]["label"].index(r["answerKey"]) if r["answerKey"] else None}
        elif task.name == "socialiqa":
            row = {"context": r["context"], "question": r["question"],
                   "choices": [r["answerA"], r["answerB"], r["answerC"]], "label": int(r["label"]) - 1}
        else:
            raise DataError(f"no hub converter for multiple-choice task {task.name!r}")
        if row["label"] in ("", None) or int(row["label"]) < 0:
            continue
        out.append({"id": str(r.get("id", i)), **row, "label": int(row["label"])})
    return out


def to_tagged_examples(rows: list[dict], tag_names: list[str] | None) -> list[dict]:
    out = []
    for r in rows:
        tags = r.get("pos_tags", r.get("ner_tags"))
        out.append({"tokens": list(r["tokens"]),
                    "tags": [tag_names[t] if tag_names and isinstance(t, int) else str(t) for t in tags]})
    return out


def to_qa_examples(rows: list[dict]) -> list[dict]:
    return [{"id": r["id"], "context": r["context"], "question": r["question"],
             "answers": [{"text": t, "answer_start": a} for t, a in zip(r["answers"]["text"],
                                                                          r["answers"]["answer_start"])]}
            for r in rows]


def write_task_files(root: Path, task: TaskSpec, split: str, lang: str, rows: list[dict],
                     tag_names: list[str] | None = None) -> list[Path]:
    """Writes hub rows in the file format and place the local loaders read; returns the files written."""
    path = Path(root) / task.path(split, lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    convert = {
        "pair_classification": lambda: to_pair_examples(task, rows),
        "multiple_choice": lambda: to_choice_rows(task, rows),
        "tagging": lambda: to_tagged_examples(rows, tag_names),
        "span_qa": lambda: to_qa_examples(rows),
    }
    if task.family in convert:
        write_examples(path, task, convert[task.family]())
    elif task.name == "tatoeba":
        path.write_text("".join(r["source_sentence"].strip() + "\n" for r in rows), encoding="utf-8")
        path.with_suffix(".eng").write_text("".join(r["target_sentence"].strip() + "\n" for r in rows),
                                            encoding="utf-8")
        return [path, path.with_suffix(".eng")]
    else:
        raise HubUnavailable(f"task {task.name!r} cannot be built from the hub: put its files at {path}")
    return [path]


def materialize(needs: Iterable[tuple[str, str, list[str]]], root: Path) -> list[Path]:
    """Fetch every missing (task, split, languages) from the hub into ``root``; one error lists all failures."""
    written, problems = [], []
    for task_name, split, langs in needs:
        task = TASKS[task_name]
        for lang in langs:
            if (Path(root) / task.path(split, lang)).is_file():
                continue
            try:
                rows = load_hub_rows(task, split, lang)
                tag_names = None
                if task.family == "tagging":
                    tag_names = _tag_names(task, lang)
                written += write_task_files(root, task, split, lang, rows, tag_names)
            except HubUnavailable as err:
                problems.append(str(err))
            except Exception as err:  # offline, unknown config, ...: say which task and what to do
                hub = task.hub
                problems.append(
                    f"task {task_name!r} {split} {lang}: could not load {hub.dataset if hub else '?'} "
                    f"config {hub_config(task, lang)!r} from the HF hub ({type(err).__name__}: {str(err)[:160]}); "
                    f"either make the hub reachable or put the file at {Path(root) / task.path(split, lang)}")
    if problems:
        raise HubUnavailable("data not available:\n  - " + "\n  - ".join(problems))
    return written


def _tag_names(task: TaskSpec, lang: str) -> list[str] | None:
    from datasets import load_dataset_builder

    features = load_dataset_builder(task.hub.dataset, hub_config(task, lang)).info.features
    column = features.get("pos_tags") or features.get("ner_tags")
    return list(getattr(getattr(column, "feature", None), "names", []) or []) or None
