"""Everything a study reads, in place before any Ray process starts, and a manifest of where it came from.

``prepare_data(cfg)`` (``ray-xt data prepare``; ``ray-xt run`` does the same first) fetches what is missing
(the hub or its mirror, XTREME's translations), checks that every file the study reads exists and has gold
where it is scored, and writes ``<data root>/manifest.json``: per (task, split, language) its source (hub id,
config, split and revision; a translation file; or a local file), rows and sha256. Every missing piece is
listed in one error. Stages record the manifest's entries as MLflow dataset inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ray_xt.config import StudyConfig, translate_languages
from ray_xt.data import source_files
from ray_xt.families import DataError, family_of
from ray_xt.problem_list import Problem, grouped_message
from ray_xt.provenance import ExampleFiles, drawn_into, held_out_counts, held_out_ids, unprovable_problems
from ray_xt.tasks.registry import MLM_CORPUS, TASKS, UDPOS_HUB_MERGED

MANIFEST = "manifest.json"


def training_source(task_name: str) -> str:
    """The task whose English data trains ``task_name`` (XQuAD and MLQA train on SQuAD)."""
    return TASKS[task_name].train_task or task_name


def data_needs(cfg: StudyConfig) -> list[tuple[str, str, list[str]]]:
    """(task, split, languages) of every file a study reads: training and dev data, each target task's scored
    split per language (test where a language has no dev set) and its submission split."""
    needs: list[tuple[str, str, list[str]]] = []
    target_language = {"translate-train", "translate-train-each"} & set(cfg.intermediate.conditions)
    for t in cfg.intermediate.tasks:
        needs += [(t, "train", ["en"]), (t, "dev", ["en"])]
        if target_language:
            needs += [(t, split, translate_languages(cfg)) for split in ("train", "dev")]
    if "mlm" in cfg.intermediate.conditions and cfg.intermediate.tasks:
        needs.append((MLM_CORPUS, "train", translate_languages(cfg)))
    for t in cfg.target.tasks:
        task = TASKS[t]
        if task.family != "retrieval":
            needs += [(training_source(t), "train", ["en"]), (training_source(t), "dev", ["en"])]
        langs = cfg.languages_for(t)
        splits = sorted({task.eval_split_for(lang) for lang in langs} | {task.submission_split})
        for split in splits:
            chosen = [lang for lang in langs if task.eval_split_for(lang) == split or split == task.submission_split]
            needs.append((t, split, [lang for lang in chosen if task.has_split(split, lang)]))
    merged: dict[tuple[str, str], list[str]] = {}
    for task_name, split, langs in needs:
        have = merged.setdefault((task_name, split), [])
        have += [lang for lang in langs if lang not in have]
    return [(t, s, langs) for (t, s), langs in merged.items() if langs]


def gold_problem(files: ExampleFiles, task_name: str, split: str, lang: str) -> str | None:
    """Why a scored split cannot be scored (its gold blanked, as xtreme's download_data.sh leaves test sets), or
    None when it has gold."""
    task = TASKS[task_name]
    examples = files.read(task_name, split, lang)
    if task.family in ("pair_classification", "multiple_choice"):
        blank = all(e["label"] is None for e in examples)
    elif task.family == "tagging":
        blank = all(e["tags"] is None for e in examples)
    elif task.family == "span_qa":
        blank = not any(a.get("text") for e in examples for a in e["answers"])
    else:
        blank = task.name == "bucc2018" and not any(e["gold"] for e in examples)
    if not blank:
        return None
    return (f"task {task_name!r} {split} {lang}: {files.path(task_name, split, lang)} has no gold labels or answers "
            "(xtreme's download_data.sh blanks test annotations), so it cannot be scored; use data.source: hub "
            "(or its mirror), whose copy has them")


def _example_keys(task_name: str, examples: list[dict]) -> set:
    """What makes two examples the same example, for tasks of one family (labels left out)."""
    family = TASKS[task_name].family
    if family == "pair_classification":
        return {(e["sentence1"], e["sentence2"]) for e in examples}
    if family == "span_qa":
        return {(e["context"], e["question"]) for e in examples}
    if family == "multiple_choice":
        return {(e["context"], e["question"], tuple(e["choices"])) for e in examples}
    if family == "tagging":
        return {tuple(e["tokens"]) for e in examples}
    return set()


def leakage_problems(files: ExampleFiles, needs: list[tuple[str, str, list[str]]],
                     held: dict[str, frozenset[str]] | None = None) -> list[str]:
    """An intermediate (or training-source) task's train and dev files must not hold a target task's evaluation
    examples: training on them, or selecting the model on them, would peek at the zero-shot evaluation (a target's
    dev set placed as intermediate/<task>/dev-<lang>.*). Examples held out by provenance (``held``: ids
    ray_xt.provenance removes from what stages read) are not counted: they are never trained or selected on.
    Compared within a family, per language; what remains is refused."""
    held = held or {}
    evaluated: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (family, lang) -> [(target task, split)]
    for task_name, split, langs in needs:
        task = TASKS[task_name]
        if task.role == "target" and task.family != "retrieval":
            for lang in langs:
                evaluated.setdefault((task.family, lang), []).append((task_name, split))
    problems = []
    for task_name, split, langs in needs:
        task = TASKS[task_name]
        if task.role != "intermediate" or split not in ("train", "dev"):
            continue
        for lang in langs:
            targets = evaluated.get((task.family, lang), [])
            if not targets:
                continue
            ids = held.get(task_name, frozenset())
            kept = [e for e in files.read(task_name, split, lang) if str(e.get("id")) not in ids]
            own = _example_keys(task_name, kept)
            for target, target_split in targets:
                shared = own & _example_keys(target, files.read(target, target_split, lang))
                if len(shared) > max(5, len(own) // 100):
                    use = "training on it" if split == "train" else "selecting the intermediate model on it"
                    problems.append(
                        f"task {task_name!r} {split} {lang}: {files.path(task_name, split, lang)} shares "
                        f"{len(shared)} of its {len(own)} examples with {target!r} {target_split} {lang} "
                        f"({files.path(target, target_split, lang)}), a zero-shot evaluation set, and no "
                        f"provenance says which to remove: {use} would peek at the evaluation. Use {task_name}'s "
                        "own data (translated, e.g. from data.translations or `ray-xt translate`, or a held-out slice)")
    return problems


@dataclass
class Entry:
    task: str
    split: str
    lang: str
    source: dict
    files: list[dict] = field(default_factory=list)  # {path, bytes, sha256}
    rows: int = 0
    # examples no stage trains or selects on (ray_xt.provenance): {examples, drawn_into: [target tasks]}
    held_out: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256("".join(f["sha256"] for f in self.files).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rows(root: Path, task_name: str, split: str, lang: str) -> int:
    task = TASKS[task_name]
    examples = family_of(task).read(root, task, split, lang)
    return sum(1 for e in examples if e.get("side", "src") == "src")


def read_manifest(root: Path) -> dict[str, dict]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    return {f"{e['task']}/{e['split']}/{e['lang']}": e for e in json.loads(path.read_text())["entries"]}


def describe(root: Path, task_name: str, split: str, lang: str, source: dict | None, known: dict) -> Entry:
    """A manifest entry; sha256 and rows are reused from the last manifest while the file is unchanged."""
    files, unchanged = [], bool(known)
    old = {f["path"]: f for f in known.get("files", [])}
    for path in source_files(root, TASKS[task_name], split, lang):
        stat = path.stat()
        previous = old.get(str(path))
        if previous and previous["bytes"] == stat.st_size and previous.get("mtime_ns") == stat.st_mtime_ns:
            files.append(previous)
        else:
            unchanged = False
            files.append({"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                          "sha256": _sha256(path)})
    rows = known["rows"] if unchanged else _rows(root, task_name, split, lang)
    return Entry(task_name, split, lang, source or known.get("source") or {"kind": "file"}, files, rows)


def write_manifest(root: Path, entries: list[Entry]) -> Path:
    """Merged with what the manifest already lists (several studies may share a data root); atomic."""
    merged = read_manifest(root)
    merged.update({f"{e.task}/{e.split}/{e.lang}": asdict(e) for e in entries})
    path = Path(root) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"entries": sorted(merged.values(), key=lambda e: (e["task"], e["split"], e["lang"]))},
                              indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def check_models(cfg: StudyConfig) -> list[str]:
    """Problems with the study's hub-scale models that can be seen before Ray starts."""
    from ray_xt.scales import SCALES, model_location

    problems = []
    for scale in cfg.scales:
        if SCALES[scale].is_micro:
            continue
        where = model_location(scale, cfg.model_paths.get(scale))
        if where != SCALES[scale].hub_id:
            if not (Path(where) / "config.json").is_file():
                problems.append(f"scale {scale!r}: no model at {where} (expected a save_pretrained folder with "
                                f"config.json; `huggingface-cli download {SCALES[scale].hub_id} --local-dir {where}`)")
        elif os.environ.get("HF_HUB_OFFLINE") == "1":
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(where, "config.json"), str):
                problems.append(f"scale {scale!r}: {where} is not in the HF cache and HF_HUB_OFFLINE=1; set "
                                "model_paths or $RAY_XT_MODEL_MIRROR")
    return problems


def prepare_data(cfg: StudyConfig, root: Path | None = None, log: Callable[[str], None] | None = None) -> list[Entry]:
    """Materialise and check everything the study reads; write the manifest; one DataError lists every problem."""
    from ray_xt.corpus import materialize_corpus
    from ray_xt.sources import HubUnavailable, materialize, mirror_dir

    root = Path(root) if root is not None else cfg.data.data_root()
    needs = data_needs(cfg)
    origins: dict[str, dict] = {}

    def record(w: dict) -> None:  # each fetched piece's origin is in the manifest as soon as it lands
        origins[f"{w['task']}/{w['split']}/{w['lang']}"] = w["source"]
        write_manifest(root, [describe(root, w["task"], w["split"], w["lang"], w["source"], {})])

    fetch_problems: list[Problem | str] = [f"data.{name}: folder {folder} does not exist" for name, folder in
                      (("hub_mirror", cfg.data.hub_mirror), ("translations", cfg.data.translations))
                      if folder is not None and not Path(folder).expanduser().is_dir()]
    if cfg.data.source != "micro" and not fetch_problems:
        root.mkdir(parents=True, exist_ok=True)
        translations = Path(cfg.data.translations).expanduser() if cfg.data.translations else None
        try:
            materialize([n for n in needs if n[0] != MLM_CORPUS], root, mirror_dir(cfg.data.hub_mirror), translations,
                        hub=cfg.data.source == "hub", on_written=record, udpos_hub=cfg.data.udpos_hub)
        except HubUnavailable as err:  # listed with every other problem below
            fetch_problems = err.problems
    folders_missing = any(str(p).startswith("data.") for p in fetch_problems)
    for task_name, _, langs in needs if not folders_missing else []:  # the corpus too when other data failed
        if task_name == MLM_CORPUS:
            fetch_problems += materialize_corpus(cfg, root, langs, mirror_dir(cfg.data.hub_mirror), record)
    problems: list = [*fetch_problems, *check_models(cfg)]
    for task_name, split, langs in needs if not fetch_problems else []:  # (what could not be fetched is named)
        for lang in langs:
            missing = [p for p in source_files(root, TASKS[task_name], split, lang) if not p.is_file()]
            problems += [Problem("expected file missing", f"task {task_name!r} {split} {lang}: {p}") for p in missing]
    held: dict[str, frozenset[str]] = {}
    files = ExampleFiles(root)  # every check below reads a file once
    if not problems:  # every scored split must have gold
        for task_name, split, langs in needs:
            task = TASKS[task_name]
            scored = [lang for lang in langs if task.role == "target" and task.eval_split_for(lang) == split]
            problems += [p for lang in scored if (p := gold_problem(files, task_name, split, lang))]
        held = held_out_ids(cfg, files)
        problems += leakage_problems(files, needs, held) + unprovable_problems(files, needs, held)
    if problems:
        footer = ("(xtreme_dir: run google-research/xtreme's scripts/download_data.sh into data.root and put "
                  "intermediate tasks under intermediate/<task>/)" if cfg.data.source == "xtreme_dir" else "")
        raise DataError(grouped_message("missing data files or models (nothing was started)", problems,
                                        _problems_file(root), footer))
    known = read_manifest(root)
    default = {"kind": "micro world", "root": str(root)} if cfg.data.source == "micro" else None
    removed = held_out_counts(files, needs, held)
    entries = []
    for task_name, split, langs in needs:
        for lang in langs:
            key = f"{task_name}/{split}/{lang}"
            entry = describe(root, task_name, split, lang, origins.get(key) or (None if key in known else default),
                             known.get(key, {}))
            if (task_name, split, lang) in removed:
                entry.held_out = {"examples": removed[(task_name, split, lang)], "drawn_into": drawn_into(task_name, cfg)}
            entries.append(entry)
    path = write_manifest(root, entries)
    labels = write_missing_labels(root, needs)
    if log is not None:
        log(summary_table(entries, origins))
        for line in held_out_lines(entries):
            log(line)
        caveats = {(e.task, e.source["caveat"]) for e in entries if e.source.get("caveat")}
        for task_name, caveat in sorted(caveats):
            log(f"[ray-xt] note: {task_name} from the hub is {caveat}")
        log(f"[ray-xt] data ready: {len(entries)} (task, split, language) sets, manifest {path}"
            + (f"; gold labels for `ray-xt score` written for {labels} submission files under {root / 'labels'}"
               if labels else ""))
    return entries


def _problems_file(root: Path) -> Path:
    """Where the whole list of a failed prepare goes: beside the manifest, or in the working folder when the data
    root cannot be written."""
    target = Path(root) / "prepare_problems.txt"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target
    except OSError:
        return Path.cwd() / "ray_xt_prepare_problems.txt"


def write_missing_labels(root: Path, needs: list[tuple[str, str, list[str]]]) -> int:
    """Gold of every target task's submission split in XTREME's labels layout, where it has gold and no labels
    file exists yet (the micro world writes its own); returns how many were written."""
    from ray_xt.sources import write_labels

    written = 0
    for task_name, split, langs in needs:
        task = TASKS[task_name]
        if task.role != "target" or split != task.submission_split:
            continue
        for lang in langs:
            if not (Path(root) / "labels" / task_name / f"test-{lang}.{task.submission_suffix}").is_file():
                written += write_labels(root, task, lang) is not None
    return written


def held_out_lines(entries: list[Entry]) -> list[str]:
    """One line per (task, split): how many examples are held out by provenance, for which target."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        if e.held_out:
            groups.setdefault((e.task, e.split), []).append(e)
    return [f"[ray-xt] held out of {task} {split} (drawn into {', '.join(group[0].held_out['drawn_into'])}'s "
            f"evaluation; never trained or selected on): "
            + ", ".join(f"{e.lang} {e.held_out['examples']:,} of {e.rows:,}" for e in group)
            for (task, split), group in groups.items()]


def summary_table(entries: list[Entry], fetched: dict[str, dict]) -> str:
    """Per task and split: languages, rows, where the files came from (this run's fetches marked)."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.task, e.split), []).append(e)
    lines = ["| task | split | languages | rows | source |", "| --- | --- | --- | --- | --- |"]
    for (task, split), group in groups.items():
        kinds = sorted({_source_label(e.source, e.lang) for e in group})
        new = sum(f"{e.task}/{e.split}/{e.lang}" in fetched for e in group)
        lines.append(f"| {task} | {split} | {len(group)} | {sum(e.rows for e in group):,} | {'; '.join(kinds)}"
                     f"{f' ({new} fetched now)' if new else ''} |")
    return "\n".join(lines)


def _source_label(source: dict, lang: str) -> str:
    kind = source.get("kind", "file")
    if kind in ("hub", "hub_mirror"):
        config = (source.get("config") or "").split(".")[0]  # udpos.German -> udpos; a config per language: none
        return f"{kind} {source['dataset']}" + (f" {config}" if config and config != lang else "")
    if kind == "translations":
        return source.get("origin", kind)
    return kind


def data_status(cfg: StudyConfig) -> dict[str, str]:
    """Per task, without fetching anything: 'present', 'to fetch (<n> files)' or 'missing (<n> files)'."""
    from ray_xt.translations import available

    root = cfg.data.data_root()
    translations = Path(cfg.data.translations).expanduser() if cfg.data.translations else None
    status: dict[str, list[int]] = {}
    for task_name, split, langs in data_needs(cfg):
        counts = status.setdefault(task_name, [0, 0])
        task = TASKS[task_name]
        for lang in langs:
            if all(p.is_file() for p in source_files(root, task, split, lang)):
                continue
            if task_name == MLM_CORPUS:
                fetchable = cfg.intermediate.mlm_corpus is not None
            elif task.role == "intermediate" and lang != "en":
                fetchable = available(translations, task_name, lang)
            else:
                fetchable = cfg.data.source == "hub" and task.hub is not None and (task_name != "udpos" or (
                    cfg.data.udpos_hub and lang not in UDPOS_HUB_MERGED))
            counts[0 if fetchable else 1] += 1
    out = {}
    for task_name, (to_fetch, missing) in status.items():
        out[task_name] = ("present" if not to_fetch + missing else
                          ", ".join(x for x in (f"to fetch ({to_fetch} files)" if to_fetch else "",
                                                f"missing ({missing} files)" if missing else "") if x))
    return out
