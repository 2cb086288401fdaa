"""`ray-xt score`: the official XTREME evaluate.py rules, on hand-computed cases and xtreme's mock submission."""

import json
import os
import shutil
from pathlib import Path

import pytest

from ray_xt.score import (
    ScoreError,
    bucc_f1,
    normalize_mlqa,
    normalize_squad,
    qa_em_f1,
    score_submission,
    score_task,
    tagging_f1,
)

SHARED = Path(os.environ.get("RAY_XT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MOCK = SHARED / "xtreme-format-examples" / "mock_test_data"
needs_mock = pytest.mark.skipif(not MOCK.is_dir(), reason=f"xtreme mock submission not found at {MOCK}")


def _squad(qas: list[tuple[str, list[str]]]) -> list[dict]:
    return [{"paragraphs": [{"context": "", "qas": [
        {"id": qid, "question": "", "answers": [{"text": a, "answer_start": 0} for a in answers]}
        for qid, answers in qas]}]}]


def test_squad_normalisation_and_scores_by_hand():
    assert normalize_squad("The  Panthers' defense!") == "panthers defense"
    data = _squad([("q1", ["the Panthers"]), ("q2", ["Denver Broncos", "Broncos"]), ("q3", ["Carolina"])])
    # q1 exact after normalisation; q2: best of the two golds is "Broncos" vs "the Broncos team" -> F1 = 2*(1/2*1)/(1.5);
    # q3 unanswered -> 0
    scores = qa_em_f1(data, {"q1": "panthers", "q2": "the Broncos team"})
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_mlqa_normalisation_is_language_specific():
    assert normalize_mlqa("der Hund", "de") == "hund"
    assert normalize_mlqa("der Hund", "es") == "der hund"
    assert normalize_mlqa("el perro.", "es") == "perro"
    # Chinese: each CJK character is a token; Unicode punctuation (，) is dropped
    assert normalize_mlqa("电动势，emf", "zh") == "电 动 势 emf"
    data = _squad([("q", ["电动势"])])
    # prediction "电动" shares 2 of 3 characters: P=1, R=2/3, F1=0.8; not an exact match
    assert qa_em_f1(data, {"q": "电动"}, "zh") == pytest.approx({"exact_match": 0.0, "f1": 80.0})
    # SQuAD rules (no language) would see one token each and score 0
    assert qa_em_f1(data, {"q": "电动"})["f1"] == 0.0


def test_bucc_and_tagging_by_hand():
    gold = ["a\tx", "b\ty", "c\tz"]
    scores = bucc_f1(gold, ["a\tx", "b\ty", "d\tw", "e\tv"])  # P = 2/4, R = 2/3
    assert scores["precision"] == pytest.approx(50.0) and scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert bucc_f1(gold, ["q\tq"])["f1"] == 0.0
    # seqeval chunks: gold PER(0-1), LOC(3); predicted PER(0-1) only -> P=1, R=1/2
    ner = tagging_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    assert ner["f1"] == pytest.approx(100 * 2 / 3)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_task_average_and_groups_follow_the_official_rules(tmp_path):
    pred, gold = tmp_path / "pred", tmp_path / "gold"
    for lang in ("de", "en", "es", "fr", "ja", "ko", "zh"):
        _write(gold / "pawsx" / f"test-{lang}.tsv", "1\n0\n1\n0\n")
        _write(pred / "pawsx" / f"test-{lang}.tsv", "1\n0\n1\n1\n" if lang == "de" else "1\n0\n1\n0\n")
    overall, detailed = score_submission(pred, gold)
    assert detailed["pawsx"]["accuracy"]["de"] == 75.0
    assert detailed["pawsx"]["avg_metric"] == pytest.approx((75 + 6 * 100) / 7)
    assert overall == {}  # classification needs xnli too; all_task needs all nine
    with pytest.raises(ScoreError, match=r"pawsx: .*test-de.tsv has 3 examples but .*test-de.tsv has 4"):
        _write(pred / "pawsx" / "test-de.tsv", "1\n0\n1\n")
        score_task("pawsx", pred, gold)


@needs_mock
def test_mock_submission_scores_and_a_perfect_submission(tmp_path):
    overall, detailed = score_submission(MOCK / "predictions", MOCK / "labels")
    assert set(detailed) == {"pawsx", "xnli", "panx", "udpos", "bucc2018", "tatoeba", "xquad", "mlqa", "tydiqa"}
    assert set(overall) == {"all_task", "classification", "tagging", "qa", "retrieval"}
    assert overall["all_task"] == pytest.approx(sum(d["avg_metric"] for d in detailed.values()) / 9)
    # PAWS-X de: an independent count of agreeing lines
    p = (MOCK / "predictions" / "pawsx" / "test-de.tsv").read_text().split()
    g = (MOCK / "labels" / "pawsx" / "test-de.tsv").read_text().split()
    assert detailed["pawsx"]["accuracy"]["de"] == pytest.approx(100 * sum(a == b for a, b in zip(p, g)) / len(g))
    assert 0 < overall["all_task"] < 100  # the mock predictions are imperfect

    # the labels submitted as predictions score 100 everywhere (QA predictions: the first gold answer)
    perfect = tmp_path / "perfect"
    shutil.copytree(MOCK / "labels", perfect)
    for task in ("xquad", "mlqa", "tydiqa"):
        for f in (perfect / task).glob("*.json"):
            data = json.loads(f.read_text())["data"]
            answers = {qa["id"]: qa["answers"][0]["text"] for a in data for p in a["paragraphs"] for qa in p["qas"]}
            f.write_text(json.dumps(answers))
    overall, _ = score_submission(perfect, MOCK / "labels")
    assert overall["all_task"] == pytest.approx(100.0)


def test_score_cli_reports_and_names_missing_files(tmp_path):
    from typer.testing import CliRunner

    from ray_xt.cli import app

    pred, gold = tmp_path / "pred", tmp_path / "gold"
    _write(gold / "tatoeba" / "test-ar.tsv", "0\n1\n")
    _write(pred / "tatoeba" / "test-ar.tsv", "0\n1\n")
    result = CliRunner().invoke(app, ["score", "--predictions", str(pred), "--labels", str(gold)])
    assert result.exit_code == 2 and "missing file" in result.output and "test-he.tsv" in result.output
    result = CliRunner().invoke(app, ["score", "--predictions", str(tmp_path / "nope"), "--labels", str(gold)])
    assert result.exit_code == 2 and "--predictions" in result.output
