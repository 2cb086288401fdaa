"""Readers of XTREME's file formats beyond pair classification (tagging, Tatoeba, BUCC).

The micro world writes these formats and the real benchmark ships them; one
reader serves both.  Errors name the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FormatError(ValueError):
    pass


@dataclass(frozen=True)
class TaggedSentences:
    tokens: list[list[str]]
    tags: list[list[str]] | None  # None for unlabeled (test) files


def read_conll(path: Path) -> TaggedSentences:
    """token<TAB>tag lines (or bare tokens), sentences separated by blank lines (xtreme udpos/panx TSV)."""
    tokens: list[list[str]] = [[]]
    tags: list[list[str]] = [[]]
    labeled = None
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            if tokens[-1]:
                tokens.append([])
                tags.append([])
            continue
        fields = line.split("\t")
        if labeled is None:
            labeled = len(fields) >= 2
        if labeled and len(fields) < 2:
            raise FormatError(f"{path}:{n}: expected token<TAB>tag, got {line!r}")
        tokens[-1].append(fields[0])
        if labeled:
            tags[-1].append(fields[1])
    if not tokens[-1]:
        tokens.pop()
        tags.pop()
    return TaggedSentences(tokens, tags if labeled else None)


def read_tatoeba(directory: Path, lang: str, iso2: str | None = None) -> tuple[list[str], list[str]]:
    """LASER naming: tatoeba.<lang>-eng.<lang> and tatoeba.<lang>-eng.eng, aligned by line.

    xtreme's download_data.sh leaves <xx>-en.<xx> and <xx>-en.en instead, with the English side sorted
    (utils_preprocess.py, tatoeba_preprocess): the alignment, which is the gold, is gone; such a folder is
    named in the error rather than scored as if aligned."""
    src_path = Path(directory) / f"tatoeba.{lang}-eng.{lang}"
    eng_path = Path(directory) / f"tatoeba.{lang}-eng.eng"
    xtreme_side = Path(directory) / f"{iso2}-en.{iso2}" if iso2 else None
    if not src_path.is_file() and xtreme_side is not None and xtreme_side.is_file():
        raise FormatError(f"tatoeba {iso2!r}: {xtreme_side} is xtreme's preprocessed layout, whose English side is "
                          "sorted (the gold alignment removed), so it cannot be scored; put LASER's "
                          f"{src_path.name} and {eng_path.name} there, or use data.source: hub")
    for p in (src_path, eng_path):
        if not p.is_file():
            raise FormatError(f"tatoeba {lang!r}: expected file {p}")
    src = src_path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    eng = eng_path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    if len(src) != len(eng):
        raise FormatError(f"tatoeba {lang!r}: {src_path} has {len(src)} lines but {eng_path} has {len(eng)}")
    return src, eng


@dataclass(frozen=True)
class BuccSplit:
    source: dict[str, str]  # id -> sentence
    english: dict[str, str]
    gold: set[tuple[str, str]]  # (source id, english id)


def _id_sentences(path: Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        sid, sep, sentence = line.partition("\t")
        if not sep:
            raise FormatError(f"{path}:{n}: expected id<TAB>sentence")
        out[sid] = sentence
    return out


def read_bucc(directory: Path, lang: str, split: str) -> BuccSplit:
    """BUCC 2018: <lang>-en.<split>.<lang>, .en (id<TAB>sentence) and .gold (id<TAB>id)."""
    base = Path(directory) / f"{lang}-en.{split}"
    paths = [base.with_name(base.name + f".{ext}") for ext in (lang, "en", "gold")]
    optional = paths[2] if split == "test" else None  # xtreme's download_data.sh deletes the test gold
    for p in paths:
        if not p.is_file() and p != optional:
            raise FormatError(f"bucc2018 {lang!r} {split!r}: expected file {p}")
    src, en = _id_sentences(paths[0]), _id_sentences(paths[1])
    gold_lines = paths[2].read_text(encoding="utf-8").splitlines() if paths[2].is_file() else []
    gold = {(pair[0], pair[1]) for line in gold_lines if line and len(pair := line.split("\t")) >= 2}
    unknown = [g for g in gold if g[0] not in src or g[1] not in en]
    if unknown:
        raise FormatError(f"{paths[2]}: gold pairs name unknown ids, e.g. {unknown[0]}")
    return BuccSplit(src, en, gold)


@dataclass(frozen=True)
class QAExample:
    id: str
    context: str
    question: str
    answers: list[dict]  # [{"text": ..., "answer_start": ...}]


def read_squad(path: Path) -> list[QAExample]:
    """SQuAD v1.1 JSON (SQuAD, XQuAD, MLQA, TyDiQA-GoldP all use it)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"expected SQuAD-format file {path}")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if "data" not in doc:
        raise FormatError(f"{path}: no 'data' list (not SQuAD v1.1 JSON)")
    out = []
    for article in doc["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                out.append(QAExample(qa["id"], para["context"], qa["question"], qa.get("answers", [])))
    return out
