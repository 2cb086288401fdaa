"""Target-language versions of the intermediate tasks: XTREME's own translations, or files already in place.

XTREME's translate-train data are neither in ``scripts/download_data.sh`` nor on the HF hub; they sit in
XTREME's ``xtreme_translations`` bucket. ``data.translations`` names a copy of that bucket's layout:

- ``XNLI/translate-train/en-{lang}-translated.tsv``: MNLI translated (14 XNLI languages). Tab-separated, no
  header, no quoting, five columns: English sentence 1, English sentence 2, translated sentence 1, translated
  sentence 2, label (``contradictory`` for contradiction). XTREME's own readers take the first three columns,
  which on today's files is the English pair (google-research/xtreme issue #37): columns 3-5 are read here.
- ``SQuAD/translate-train/squad.translate.train.en-{lang}.json`` and
  ``SQuAD/translate-dev/squad.translate.dev.en-{lang}.json``: SQuAD v1.1 JSON.
- ``PAWSX/translate-train/en-{lang}-translated.tsv`` is PAWS-X translated, not QQP: it never stands in for
  QQP. ``TyDiQA-GoldP/translate-train/...`` translates a target task, not an intermediate one.

A translated file becomes ``intermediate/<task>/{train,dev}-<lang>.*`` under the data root, the place
``ray-xt translate`` writes to; a file already there is kept as it is. Where a translation has no dev split
(XNLI translate-train), a held-out slice of the translated training data is its dev set: the same English
examples in every language (chosen by a hash of the English pair), never in its training file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ray_xt.families import DataError
from ray_xt.tasks.registry import TASKS


@dataclass(frozen=True)
class TranslationSource:
    task: str  # the intermediate task it translates
    origin: str  # what the files are, for the manifest and messages
    files: dict[str, str]  # split -> path under data.translations ({lang})
    languages: tuple[str, ...]
    format: str  # "pair_tsv" | "squad_json"


XNLI_MT_LANGUAGES = ("ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
SQUAD_MT_LANGUAGES = ("ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh")

TRANSLATIONS: dict[str, TranslationSource] = {
    "mnli": TranslationSource("mnli", "XTREME's XNLI translate-train (MNLI machine-translated)",
                              {"train": "XNLI/translate-train/en-{lang}-translated.tsv"}, XNLI_MT_LANGUAGES,
                              "pair_tsv"),
    "squad": TranslationSource("squad", "XTREME's SQuAD translate-train/translate-dev (SQuAD v1.1 machine-translated)",
                               {"train": "SQuAD/translate-train/squad.translate.train.en-{lang}.json",
                                "dev": "SQuAD/translate-dev/squad.translate.dev.en-{lang}.json"},
                               SQUAD_MT_LANGUAGES, "squad_json"),
}
# what a user might take for a translation of an intermediate task, and why it is not one
NOT_A_TRANSLATION = {
    "qqp": "XTREME's PAWSX/translate-train is PAWS-X (Wikipedia sentence pairs) translated, not QQP",
}

XNLI_LABELS = {"contradictory": "contradiction"}
HELDOUT_MAX = 2000  # held-out dev examples per language at most (about the size of XNLI's dev set per language)


def translate_command(root: Path, task: str, langs: list[str]) -> str:
    return f"ray-xt translate --root {root} --task {task} --languages {','.join(langs)} --model <MT model>"


def read_translated_pairs(path: Path, labels: tuple[str, ...]) -> tuple[list[dict], int]:
    """(examples with their English pair, rows skipped): rows of five fields whose label is valid."""
    rows, skipped = [], 0
    with Path(path).open(encoding="utf-8", newline="") as f:
        for fields in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) != 5:
                skipped += 1
                continue
            en1, en2, s1, s2, label = fields
            label = XNLI_LABELS.get(label.strip(), label.strip())
            if label not in labels or not s1.strip() or not s2.strip():
                skipped += 1
                continue
            rows.append({"sentence1": s1, "sentence2": s2, "label": label, "english": en1 + "\t" + en2})
    return rows, skipped


def read_translated_squad(path: Path) -> tuple[list[dict], dict[str, int]]:
    """The examples, each answer where its text is in the translated context (``relocated_answer``), and the counts
    of answers moved and examples dropped: machine translation moves answers, and an answer_start that no longer
    points at its text would silently make the window it falls in a no-answer window."""
    from ray_xt.formats import FormatError, read_squad

    try:
        examples = read_squad(path)
    except (FormatError, json.JSONDecodeError, KeyError) as err:
        raise DataError(f"{path}: not SQuAD v1.1 JSON ({err})") from None
    rows, counts = [], {"answers_relocated": 0, "examples_dropped": 0}
    for e in examples:
        answers = []
        for answer in e.answers:
            start = relocated_answer(e.context, answer["text"], answer["answer_start"])
            if start is None:
                continue
            counts["answers_relocated"] += start != answer["answer_start"]
            answers.append({**answer, "answer_start": start})
        if e.answers and not answers:
            counts["examples_dropped"] += 1
            continue
        rows.append({"id": e.id, "context": e.context, "question": e.question, "answers": answers, "english": e.id})
    return rows, counts


def relocated_answer(context: str, text: str, start: int) -> int | None:
    """Where ``text`` stands in ``context``: ``start`` if it is there, else its occurrence nearest to ``start``;
    None where the translated context does not hold it."""
    if not text or context[start:start + len(text)] == text:
        return start if text else None
    found, at = [], context.find(text)
    while at != -1:
        found.append(at)
        at = context.find(text, at + 1)
    return min(found, key=lambda i: abs(i - start)) if found else None


def heldout_share(n: int) -> int:
    """Per mille of examples held out as dev: HELDOUT_MAX of them, between 0.5% and 5%."""
    return max(5, min(50, math.ceil(HELDOUT_MAX * 1000 / max(n, 1))))


def split_heldout(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train, dev): dev holds the rows whose English source hashes into the held-out share."""
    share = heldout_share(len(rows))

    def bucket(row: dict) -> int:
        return int(hashlib.sha1(row["english"].encode()).hexdigest(), 16) % 1000

    dev = [r for r in rows if bucket(r) < share]
    if not dev and rows:  # a tiny file: hold out its lowest-hashing row
        dev = [min(rows, key=bucket)]
    held = {id(r) for r in dev}
    return [r for r in rows if id(r) not in held], dev


@dataclass
class Translated:
    """A translated (task, split, language) written under the data root, and where it came from."""

    task: str
    split: str
    lang: str
    path: Path
    source: dict


def available(translations: Path | None, task: str, lang: str) -> bool:
    source = TRANSLATIONS.get(task)
    return bool(translations and source and lang in source.languages
                and (Path(translations) / source.files["train"].format(lang=lang)).is_file())


def materialize_translation(root: Path, translations: Path, task: str, lang: str) -> list[Translated]:
    """Writes intermediate/<task>/{train,dev}-<lang>.* from XTREME's translation files; keeps files already there."""
    from ray_xt.data import write_examples

    source, spec = TRANSLATIONS[task], TASKS[task]
    train_file = Path(translations) / source.files["train"].format(lang=lang)
    if source.format == "pair_tsv":
        rows, skipped = read_translated_pairs(train_file, spec.labels)
    else:
        rows, answers = read_translated_squad(train_file)
        skipped = answers["examples_dropped"]
    if not rows:
        raise DataError(f"{train_file}: no usable rows ({skipped} malformed); expected {source.origin}")
    origin = {"kind": "translations", "origin": source.origin, "file": str(train_file), "skipped_rows": skipped,
              **({} if source.format == "pair_tsv" else answers)}
    if "dev" in source.files:
        dev_file = Path(translations) / source.files["dev"].format(lang=lang)
        if not dev_file.is_file():
            raise DataError(f"task {task!r} {lang}: expected {dev_file} beside {train_file} ({source.origin})")
        dev_rows, dev_answers = read_translated_squad(dev_file)
        splits = {"train": (rows, origin), "dev": (dev_rows, {**origin, "file": str(dev_file),
                                                              "skipped_rows": dev_answers["examples_dropped"],
                                                              **dev_answers})}
    else:
        paths = {split: Path(root) / spec.path(split, lang) for split in ("train", "dev")}
        there = [split for split, path in paths.items() if path.is_file()]
        if len(there) == 1:  # a held-out dev must come from the very file its training data come from
            raise DataError(f"task {task!r} {lang}: {paths[there[0]]} exists but {paths[({'train', 'dev'} - set(there)).pop()]}"
                            f" does not; {source.origin} has no dev split, and a slice held out of it could hold the "
                            "same examples as the training file already there: add the missing file from the same "
                            "source, or remove the one there to use XTREME's translation for both")
        train, dev = split_heldout(rows)
        share = heldout_share(len(rows))
        splits = {"train": (train, {**origin, "heldout": f"{len(dev)} rows held out as dev"}),
                  "dev": (dev, {**origin, "heldout": f"held-out slice: English pairs hashing below {share}/1000"})}
    out = []
    for split, (examples, provenance) in splits.items():
        path = Path(root) / spec.path(split, lang)
        if path.is_file():
            continue  # never rewrite what is there
        write_examples(path, spec, [{k: v for k, v in e.items() if k != "english"} for e in examples])
        out.append(Translated(task, split, lang, path, provenance))
    return out


def missing_message(root: Path, translations: Path | None, task: str, langs: list[str]) -> str:
    """One problem line: the task, its languages and both ways to get them."""
    source = TRANSLATIONS.get(task)
    if source is not None:
        where = (f"put XTREME's translations under data.translations "
                 f"({source.files['train'].format(lang=langs[0])}"
                 + (f", found in {translations}: {[lang for lang in langs if available(translations, task, lang)]}"
                    if translations else "; data.translations is not set")
                 + f"; XTREME translated {task} into {','.join(source.languages)})")
    else:
        why = NOT_A_TRANSLATION.get(task, f"XTREME ships no translation of {task}")
        where = f"no XTREME translation exists ({why})"
    spec = TASKS[task]
    return (f"task {task!r}: no target-language data for {','.join(langs)} under {Path(root) / spec.path('train', langs[0])} "
            f"and the like: {where}; or translate it: `{translate_command(root, task, langs)}`; "
            "or choose other intermediate.languages")
