"""XTREME submission scoring: the numbers google-research/xtreme's ``evaluate.py`` computes.

Layout (both folders): ``<task>/test-<lang>.tsv`` (``.json`` for the QA tasks).
Per task the official rules are followed exactly:

- xnli, pawsx, tatoeba: accuracy over lines (one label / one index per line);
- udpos, panx: seqeval's (default, conlleval-style) F1 over blank-line separated sentences, one tag per line
  -- POS tags included, as the official script scores them;
- bucc2018: F1 of the set of predicted ``src<TAB>trg`` pairs against the gold set;
- xquad, tydiqa: SQuAD v1.1 EM/F1; mlqa: MLQA's EM/F1 with language-specific normalisation;
- per task the average over XTREME's language list, ``avg_metric`` = (EM + F1) / 2 for QA, else F1 or
  accuracy; group scores and the overall XTREME score only when all their tasks are present.

The metric code is written here (the official one is a script, not a library; the SQuAD metric in HF
``evaluate`` must be fetched from the hub), and ``tests/test_score.py`` pins it on hand-computed cases and on
xtreme's mock submission.
"""

from __future__ import annotations

import json
import re
import string
import sys
import unicodedata
from collections import Counter
from pathlib import Path

from ray_xt.tasks.registry import TASKS

GROUPS: dict[str, tuple[str, ...]] = {
    "classification": ("pawsx", "xnli"),
    "tagging": ("udpos", "panx"),
    "qa": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc2018", "tatoeba"),
}
SCORED_TASKS: tuple[str, ...] = ("pawsx", "xnli", "panx", "udpos", "bucc2018", "tatoeba", "xquad", "mlqa", "tydiqa")
QA_TASKS = set(GROUPS["qa"])


class ScoreError(ValueError):
    """A prediction or label file is missing or does not match; the message names the file."""


# ---------------------------------------------------------------- readers (as the official script reads)

def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in _read(path).splitlines()]


def read_tags(path: Path) -> list[list[str]]:
    """Sentences of tags: one tag a line, a blank line between sentences."""
    sentences, current = [], []
    for line in _read(path).splitlines():
        line = line.strip()
        if line:
            current.append(line)
        else:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def read_json(path: Path):
    try:
        data = json.loads(_read(path))
    except json.JSONDecodeError as err:
        raise ScoreError(f"{path}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    return data["data"] if isinstance(data, dict) and "data" in data else data


def _read(path: Path) -> str:
    if not path.is_file():
        raise ScoreError(f"missing file {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScoreError(f"{path}: not UTF-8 text (byte {err.start}); XTREME's files are UTF-8") from None
    return text


# ---------------------------------------------------------------- metrics

def accuracy(labels: list, predictions: list) -> dict:
    correct = sum(int(p == g) for p, g in zip(predictions, labels))
    return {"accuracy": 100.0 * correct / len(predictions)}


def tagging_f1(labels: list[list[str]], predictions: list[list[str]]) -> dict:
    import warnings

    from seqeval.metrics import f1_score, precision_score, recall_score

    with warnings.catch_warnings():  # POS tags are not BIO: seqeval warns, and scores them as XTREME does
        warnings.simplefilter("ignore", UserWarning)
        return {
            "f1": 100 * float(f1_score(labels, predictions)),
            "precision": 100 * float(precision_score(labels, predictions)),
            "recall": 100 * float(recall_score(labels, predictions)),
        }


def bucc_f1(labels: list[str], predictions: list[str]) -> dict:
    gold = {tuple(line.split("\t")) for line in labels}
    pred = {tuple(line.split("\t")) for line in predictions}
    correct = len(gold & pred)
    if not correct:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision, recall = correct / len(pred), correct / len(gold)
    return {"f1": 100 * 2 * precision * recall / (precision + recall), "precision": 100 * precision,
            "recall": 100 * recall}


PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")} | set(
    string.punctuation)
# MLQA's article lists (its evaluation script); other languages keep their words.
MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
}
MIXED_SEGMENTATION = {"zh"}  # CJK characters and punctuation are tokens of their own


def _mixed_segmentation(text: str) -> list[str]:
    tokens, pending = [], ""
    for char in text:
        if re.search(r"[\u4e00-\u9fa5]", char) or char in PUNCT:
            tokens.extend(pending.split())
            pending = ""
            tokens.append(char)
        else:
            pending += char
    return tokens + pending.split()


def normalize_squad(text: str) -> str:
    """SQuAD v1.1: lower case, no ASCII punctuation, no English articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def normalize_mlqa(text: str, lang: str) -> str:
    """MLQA: lower case, no Unicode punctuation, the language's articles, whitespace or mixed segmentation.

    The official script rejects languages outside MLQA's seven; here they get whitespace tokenisation and no
    article removal (what it does for Hindi), so the micro world's languages can be scored too.
    """
    text = "".join(ch for ch in text.lower() if ch not in PUNCT)
    if lang in MLQA_ARTICLES:
        text = re.sub(MLQA_ARTICLES[lang], " ", text)
    tokens = _mixed_segmentation(text) if lang in MIXED_SEGMENTATION else text.split()
    return " ".join(t for t in tokens if t.strip())


def _token_f1(prediction: str, truth: str) -> float:
    pred, gold = prediction.split(), truth.split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def qa_em_f1(dataset: list[dict], predictions: dict[str, str], lang: str | None = None) -> dict:
    """SQuAD v1.1 EM/F1 (``lang`` None) or MLQA's (``lang`` given), max over the gold answers, in %."""
    norm = normalize_squad if lang is None else (lambda s: normalize_mlqa(s, lang))
    em = f1 = total = 0.0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue  # unanswered: scores 0, as officially
                pred = norm(predictions[qa["id"]])
                golds = [norm(a["text"]) for a in qa["answers"]]
                em += max(float(pred == g) for g in golds)
                f1 += max(_token_f1(pred, g) for g in golds)
    return {"exact_match": 100 * em / total, "f1": 100 * f1 / total}


# ---------------------------------------------------------------- one task, a whole submission

def score_file(task: str, prediction_file: Path, label_file: Path, lang: str) -> dict:
    if task in ("xnli", "pawsx", "tatoeba"):
        preds, gold = read_lines(prediction_file), read_lines(label_file)
        _same_length(task, prediction_file, label_file, preds, gold)
        return accuracy(gold, preds)
    if task in ("udpos", "panx"):
        tag_preds, tag_gold = read_tags(prediction_file), read_tags(label_file)
        _same_length(task, prediction_file, label_file, tag_preds, tag_gold)
        for number, (p, g) in enumerate(zip(tag_preds, tag_gold), 1):
            if len(p) != len(g):
                raise ScoreError(f"{task}: sentence {number} has {len(p)} tags in {prediction_file} but {len(g)} "
                                 f"tokens in {label_file}; one tag per line, sentences separated by a blank line")
        return tagging_f1(tag_gold, tag_preds)
    if task == "bucc2018":
        gold, preds = read_lines(label_file), read_lines(prediction_file)
        for path, lines in ((prediction_file, preds), (label_file, gold)):
            bad = next((n for n, line in enumerate(lines, 1) if line and len(line.split("\t")) != 2), None)
            if bad is not None:
                raise ScoreError(f"{path}: line {bad} is not a pair 'source id<TAB>target id' "
                                 f"(got {lines[bad - 1][:60]!r})")
        return bucc_f1(gold, preds)
    if task in QA_TASKS:
        preds = read_json(prediction_file)
        if not isinstance(preds, dict) or not all(isinstance(v, str) for v in preds.values()):
            raise ScoreError(f"{prediction_file}: expected a JSON object {{question id: answer text}}")
        dataset = read_json(label_file)
        if not isinstance(dataset, list) or not all(
                isinstance(a, dict) and isinstance(a.get("paragraphs"), list) for a in dataset):
            raise ScoreError(f"{label_file}: expected SQuAD's layout, {{\"data\": [{{\"paragraphs\": [...]}}]}}")
        try:
            return qa_em_f1(dataset, preds, lang if task == "mlqa" else None)
        except (KeyError, TypeError) as err:
            raise ScoreError(f"{label_file}: a question without {err} (SQuAD's layout: qas with id and "
                             "answers[].text)") from None
    raise ScoreError(f"unknown task {task!r}; scored tasks: {', '.join(SCORED_TASKS)}")


def _same_length(task, prediction_file, label_file, preds, gold) -> None:
    if not gold:
        raise ScoreError(f"{task}: {label_file} is empty; nothing to score against")
    if len(preds) != len(gold):
        raise ScoreError(f"{task}: {prediction_file} has {len(preds)} examples but {label_file} has {len(gold)}")


def score_task(task: str, predictions: Path, labels: Path, languages: tuple[str, ...] | None = None) -> dict:
    """Scores of one task over its languages (given, else XTREME's list, else - a micro world's submission - the
    languages of the label files): {metric: {lang: value}, avg_<metric>: value, avg_metric: value}."""
    suffix = "json" if task in QA_TASKS else "tsv"
    if languages is None:
        languages = tuple(TASKS[task].languages)
        labelled = sorted(p.name[5:-len(suffix) - 1] for p in (labels / task).glob(f"test-*.{suffix}"))
        if set(labelled) - set(languages):  # not XTREME's label set (a micro world's): score what it labels
            languages = tuple(labelled)
    scores: dict = {}
    for lang in languages:
        result = score_file(task, predictions / task / f"test-{lang}.{suffix}",
                            labels / task / f"test-{lang}.{suffix}", lang)
        for metric, value in result.items():
            scores.setdefault(metric, {})[lang] = value
    averages = {f"avg_{m}": sum(v.values()) / len(v) for m, v in scores.items()}
    scores.update(averages)
    if task in QA_TASKS:
        scores["avg_metric"] = (scores["avg_exact_match"] + scores["avg_f1"]) / 2
    elif "avg_f1" in scores:
        scores["avg_metric"] = scores["avg_f1"]
    else:
        scores["avg_metric"] = scores["avg_accuracy"]
    return scores


def score_submission(predictions: Path, labels: Path, languages: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """(overall, per task) as the official evaluate.py: tasks present in both folders, in XTREME's languages (or
    ``languages``)."""
    predictions, labels = Path(predictions), Path(labels)
    for folder, what in ((predictions, "--predictions"), (labels, "--labels")):
        if not folder.is_dir():
            raise ScoreError(f"{what} {folder} is not a directory (expected <task>/test-<lang>.tsv|json inside)")
    present = {p.name for p in predictions.iterdir() if p.is_dir()} & {p.name for p in labels.iterdir() if p.is_dir()}
    detailed = {task: score_task(task, predictions, labels, languages) for task in SCORED_TASKS if task in present}
    if not detailed:
        raise ScoreError(f"no task folder of {list(SCORED_TASKS)} in both {predictions} and {labels}")
    overall = {}
    if set(detailed) == set(SCORED_TASKS):
        overall["all_task"] = sum(d["avg_metric"] for d in detailed.values()) / len(SCORED_TASKS)
    for group, tasks in GROUPS.items():
        if set(tasks) <= set(detailed):
            overall[group] = sum(detailed[t]["avg_metric"] for t in tasks) / len(tasks)
    return overall, detailed
