"""The real data from the HF hub (or a local mirror of its dataset repos), written into the XTREME layout the
local loaders read.

``materialize(needs, root)`` loads each (task, split, language) with ``datasets.load_dataset`` (hub ids and
configs in the task registry; with a mirror, ``<mirror>/<org>/<name>``, a snapshot of the same repo as
``huggingface-cli download --repo-type dataset`` leaves it), converts the rows to the family's file format and
writes them where xtreme's ``download_data.sh`` would have put them; target-language intermediate data come from
XTREME's translations (``ray_xt.translations``), never from the hub's English rows. Files already there are
kept, so a machine with a local download never touches the hub, and an offline machine gets one error that
names every missing task, its hub id and the local path to fill.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ray_xt.data import write_examples
from ray_xt.families import DataError
from ray_xt.tasks.registry import TASKS, UDPOS_HUB_MERGED, TaskSpec

if TYPE_CHECKING:
    from ray_xt.snapshots import Snapshot

NLI_LABELS = ("entailment", "neutral", "contradiction")  # the id order of GLUE MNLI, XNLI and ANLI on the hub


class HubUnavailable(DataError):
    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or [message]  # Problem or str, grouped by cause where they are reported


def load_failure(err: Exception, task: TaskSpec, split: str, lang: str, root: Path, mirror: Path | None):
    """A failed ``load_dataset`` as a Problem whose cause is the same for every dataset it hit (names taken out of
    the library's message), so hundreds of (task, split, language) sets offline read as one cause."""
    from ray_xt.problem_list import Problem, error_cause

    where = f"the mirror {mirror}" if mirror else "the HF hub"
    dataset = task.hub.dataset if task.hub else "?"
    return Problem(
        cause=f"could not load from {where} ({error_cause(err)})",
        item=f"task {task.name!r} {split} {lang} ({dataset} config {hub_config(task, lang)!r})",
        fix=f"make it reachable (data.hub_mirror, ${MIRROR_ENV}, or the network) or put each file in place, e.g. "
            f"{Path(root) / task.path(split, lang)}",
        source=dataset)


MIRROR_ENV = "RAY_XT_HUB_MIRROR"


def mirror_dir(configured: Path | str | None = None) -> Path | None:
    """The local dataset mirror: data.hub_mirror, else $RAY_XT_HUB_MIRROR, else none (the hub itself)."""
    value = configured or os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def hub_config(task: TaskSpec, lang: str) -> str | None:
    hub = task.hub
    if hub is None or hub.config is None:
        return None
    name = hub.language_names.get(lang, lang) if hub.language_names else lang
    if task.name == "tatoeba":
        from ray_xt.tasks.registry import TATOEBA_ISO3

        name = TATOEBA_ISO3.get(lang, lang)
    return hub.config.format(lang=name)


def hub_origin(task: TaskSpec, split: str, lang: str, mirror: Path | None, snapshot: Snapshot | None = None) -> dict:
    """Where a (task, split, language) is loaded from: what the manifest and MLflow record."""
    hub = task.hub
    assert hub is not None
    origin = {"kind": "hub", "dataset": hub.dataset, "config": hub_config(task, lang), "split": hub.splits[split],
              "revision": hub.revision or "main", **({"caveat": UDPOS_HUB_CAVEAT} if task.name == "udpos" else {})}
    if mirror is not None:
        from ray_xt.snapshots import snapshot_of

        snapshot = snapshot or snapshot_of(mirror / hub.dataset)
        origin.update(kind="hub_mirror", path=str(mirror / hub.dataset), **snapshot.origin())
    return origin


def load_hub_rows(task: TaskSpec, split: str, lang: str, mirror: Path | None = None,
                  snapshot: Snapshot | None = None):
    """One (task, split, language) from the hub, or from the mirror's snapshot of the same repo, through the same
    ``datasets.load_dataset`` call; a ``datasets.Dataset`` in the hub's own schema. ``snapshot``: the mirror folder's
    ``ray_xt.snapshots.Snapshot`` when the caller has it (else it is taken here)."""
    from datasets import load_dataset

    if task.hub is None:
        raise HubUnavailable(f"task {task.name!r} is not on the HF hub (licence or missing gold data): "
                             f"put its files under data.root at {task.path(split, lang)}")
    if not task.has_split(split, lang):
        raise HubUnavailable(f"task {task.name!r} has no {split!r} split in language {lang!r} (upstream has "
                             f"{[s for s in ('train', 'dev', 'test') if task.has_split(s, lang)]} only)")
    if task.name == "udpos" and lang in UDPOS_HUB_MERGED:
        from ray_xt.problem_list import Problem

        name = hub_config(task, lang)
        raise HubUnavailable(str(problem := Problem(
            cause="google/xtreme's udpos config merges another language's treebanks (its loader takes every UD 2.5 "
                  "folder matching *_<Name>*), so it is not XTREME's UD-POS",
            item=f"task 'udpos' {split} {lang} ({name}: {UDPOS_HUB_MERGED[lang]})",
            fix="put XTREME's own files at download/udpos/{train,dev,test}-<lang>.tsv under data.root "
                "(google-research/xtreme's scripts/download_data.sh writes them), or leave the language out "
                "(target.languages)")), [problem])
    hub_split = task.hub.splits.get(split)
    if hub_split is None:
        raise HubUnavailable(f"task {task.name!r} has no {split!r} split on the hub ({task.hub.dataset})")
    path, revision = task.hub.dataset, task.hub.revision
    if mirror is not None:
        path, revision = str(mirror / task.hub.dataset), None  # a snapshot is one revision
        if not Path(path).is_dir():
            raise HubUnavailable(f"hub mirror: no folder {path} (make it with `huggingface-cli download --repo-type "
                                 f"dataset {task.hub.dataset}{' --revision ' + task.hub.revision if task.hub.revision else ''}"
                                 f" --local-dir {path}`)")
        if (unexported := export_problem(task, Path(path))) is not None:
            raise HubUnavailable(unexported)
    cache_dir = None
    if mirror is not None:  # the snapshot's own cache: another mirror of the same repo never lends its rows
        from ray_xt.snapshots import cache_dir_for, snapshot_of

        cache_dir = cache_dir_for(snapshot or snapshot_of(Path(path)))
    rows = load_dataset(path, hub_config(task, lang), split=hub_split, revision=revision, cache_dir=cache_dir)
    if task.name == "tydiqa":  # one config for all languages; the id starts with the language name
        from ray_xt.tasks.registry import UD_NAMES

        prefix = {"bn": "bengali", "sw": "swahili"}.get(lang, UD_NAMES.get(lang, lang).lower()) + "-"
        rows = rows.filter(lambda r: r["id"].startswith(prefix))
    return rows


# Not XTREME's own build of UD-POS even where no other treebank is merged in (UDPOS_HUB_MERGED is refused)
UDPOS_HUB_CAVEAT = ("built from UD 2.5 by google/xtreme's own loader, not by XTREME's download_data.sh (which keeps "
                    "multiword tokens' surface forms and drops sentences without text): token sequences may differ "
                    "from XTREME's files, the reference for comparing with published UD-POS scores")


def udpos_not_xtremes(split: str, lang: str, root: Path):
    from ray_xt.problem_list import Problem

    return Problem(
        cause="UD-POS is read as XTREME builds it, and the hub's udpos configs are google/xtreme's own build",
        item=f"task 'udpos' {split} {lang}",
        fix=f"put XTREME's files under data.root (google-research/xtreme's scripts/download_data.sh writes "
            f"download/udpos/{{train,dev,test}}-<lang>.tsv; e.g. {Path(root) / TASKS['udpos'].path(split, lang)}), or "
            "accept the hub's build with data.udpos_hub: true (recorded with its caveat)")


PARQUET_EXPORT = "refs/convert/parquet"


def export_problem(task: TaskSpec, folder: Path) -> str | None:
    """Why a mirror of a script-only repo cannot be read (None: it can): such repos load only from the hub's
    parquet export (``refs/convert/parquet``), and a mirror of their main branch holds a loading script that
    datasets >= 4 refuses."""
    if task.hub is None or task.hub.revision != PARQUET_EXPORT or any(folder.rglob("*.parquet")):
        return None
    return (f"task {task.name!r}: the mirror {folder} holds no parquet files: {task.hub.dataset}'s main branch is a "
            f"loading script (refused by datasets >= 4); mirror its parquet export instead: `huggingface-cli download "
            f"--repo-type dataset {task.hub.dataset} --revision {PARQUET_EXPORT} --local-dir {folder}` (whether the hub "
            "has that export for a repo is shown on its 'Files' page under the branch refs/convert/parquet)")


def export_status(task: TaskSpec, mirror: Path | None) -> str | None:
    """What `ray-xt plan` says of a task read from a parquet export; None for other tasks."""
    if task.hub is None or task.hub.revision != PARQUET_EXPORT:
        return None
    if mirror is None:
        return f"read from the hub's {PARQUET_EXPORT} export of {task.hub.dataset} (checked when fetched)"
    folder = mirror / task.hub.dataset
    if not folder.is_dir():
        return f"no mirror folder {folder}"
    problem = export_problem(task, folder)
    return "parquet export present in the mirror" if problem is None else "mirror has no parquet export (see data prepare)"


def tag_names(rows) -> list[str] | None:
    """The tag names of a tagging dataset's ClassLabel column (None: the tags are strings already)."""
    column = rows.features.get("pos_tags") or rows.features.get("ner_tags")
    return list(getattr(getattr(column, "feature", None), "names", []) or []) or None


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
        tags = r.get("pos_tags", r.get("ner_tags")) or []
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


def write_labels(root: Path, task: TaskSpec, lang: str) -> Path | None:
    """Gold labels of a target task's submission split in XTREME's labels layout (what ``ray-xt score`` reads),
    from the file the loaders read; None where that file has no gold."""
    from ray_xt.families import family_of

    split = task.submission_split
    examples = family_of(task).read(root, task, split, lang)
    out = Path(root) / "labels" / task.name / f"test-{lang}.{task.submission_suffix}"
    if task.family == "pair_classification" and all(e["label"] is not None for e in examples):
        text = "".join(f"{e['label']}\n" for e in examples)
    elif task.family == "tagging" and all(e["tags"] is not None for e in examples):
        text = "".join("".join(f"{t}\n" for t in e["tags"]) + "\n" for e in examples)
    elif task.family == "span_qa" and any(a.get("text") for e in examples for a in e["answers"]):
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(root) / task.path(split, lang), out)
        return out
    elif task.name == "tatoeba":
        text = "".join(f"{e['gold']}\n" for e in examples if e["side"] == "src")
    elif task.name == "bucc2018" and any(e["gold"] for e in examples):
        text = "".join(f"{e['id']}\t{e['gold']}\n" for e in examples if e["side"] == "src" and e["gold"])
    else:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def materialize(needs: Iterable[tuple[str, str, list[str]]], root: Path, mirror: Path | None = None,
                translations: Path | None = None, hub: bool = True,
                on_written: Callable[[dict], None] | None = None, udpos_hub: bool = False) -> list[dict]:
    """Fetch every missing (task, split, languages) into ``root``: English and target-task data from the hub (or
    its mirror) when ``hub``, target-language intermediate data from XTREME's translations; one error lists every
    failure. Files already there are kept. Returns what was written, with its origin, for the manifest;
    ``on_written`` hears of each as it lands (so its origin is recorded even if a later piece fails)."""
    from ray_xt.translations import available, materialize_translation, missing_message

    written, problems = [], []
    untranslated: dict[str, list[str]] = {}
    snapshots: dict[str, Snapshot] = {}  # mirror repo -> what its folder holds
    for task_name, split, langs in needs:
        task = TASKS[task_name]
        for lang in langs:
            if (Path(root) / task.path(split, lang)).is_file():
                continue
            if task.role == "intermediate" and lang != "en":
                # never the hub: its intermediate datasets are English, and English rows must not stand under
                # another language's name
                if translations is not None and available(translations, task_name, lang):
                    try:
                        landed = materialize_translation(root, translations, task_name, lang)
                    except DataError as err:
                        problems.append(str(err))
                        continue
                    for t in landed:
                        written.append({"task": t.task, "split": t.split, "lang": t.lang, "files": [str(t.path)],
                                        "source": t.source})
                        if on_written:
                            on_written(written[-1])
                elif lang not in untranslated.setdefault(task_name, []):
                    untranslated[task_name].append(lang)
                continue
            if not hub:
                continue  # a local folder: the presence check names what is missing
            if task.hub is None:
                problems.append(f"task {task_name!r} is not on the HF hub (licence, or no gold data there): put its "
                                f"{split} {lang} file at {Path(root) / task.path(split, lang)}"
                                + (" (google-research/xtreme's scripts/download_data.sh writes it)"
                                   if task.role == "target" else ""))
                continue
            if task.name == "udpos" and not udpos_hub:
                problems.append(udpos_not_xtremes(split, lang, root))
                continue
            try:
                repo, snapshot = task.hub.dataset, None
                if mirror is not None and (mirror / repo).is_dir():  # each repo folder walked once per call
                    from ray_xt.snapshots import snapshot_of

                    if repo not in snapshots:
                        snapshots[repo] = snapshot_of(mirror / repo)
                    snapshot = snapshots[repo]
                rows = load_hub_rows(task, split, lang, mirror, snapshot)
                names = tag_names(rows) if task.family == "tagging" else None
                files = write_task_files(root, task, split, lang, [dict(r) for r in rows], names)
                written.append({"task": task_name, "split": split, "lang": lang, "files": [str(f) for f in files],
                                "source": hub_origin(task, split, lang, mirror, snapshot)})
                if on_written:
                    on_written(written[-1])
            except HubUnavailable as err:
                problems += err.problems
            except Exception as err:  # noqa: BLE001 - offline, unknown config, ...: say which task and what to do
                problems.append(load_failure(err, task, split, lang, root, mirror))
    problems += [missing_message(root, translations, task, langs) for task, langs in untranslated.items()]
    if problems:
        raise HubUnavailable("data not available:\n  - " + "\n  - ".join(map(str, problems)), problems)
    return written
