"""Hub rows -> XTREME-layout files read by the same loaders; offline errors that say what to do;
the Ray Data translation job (a tiny random MT model: plumbing, not translation quality)."""

import json
import os
import subprocess
import sys

import pytest

from ray_xt.data import read_examples
from ray_xt.sources import write_task_files
from ray_xt.tasks.registry import TASKS, XTREME_LANGUAGES


def test_registry_has_all_target_and_intermediate_tasks_with_xtreme_languages():
    targets = {t for t, s in TASKS.items() if s.role == "target"}
    assert targets == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"}
    intermediates = {t for t, s in TASKS.items() if s.role == "intermediate"}
    assert intermediates == {"mnli", "anli", "qqp", "squad", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa",
                             "ccg"}
    assert {s.family for s in TASKS.values()} == {"pair_classification", "multiple_choice", "tagging", "span_qa",
                                                 "retrieval", "masked_lm"}
    assert {t for t, s in TASKS.items() if s.role == "corpus"} == {"mlm"}  # the mlm condition's text
    sizes = {t: len(TASKS[t].languages) for t in XTREME_LANGUAGES}
    assert sizes == {"pawsx": 7, "xnli": 15, "panx": 40, "udpos": 33, "bucc2018": 4, "tatoeba": 36, "xquad": 11,
                     "mlqa": 7, "tydiqa": 9}


def test_hub_rows_are_written_in_the_layout_the_loaders_read(tmp_path):
    write_task_files(tmp_path, TASKS["xnli"], "dev", "de", [
        {"premise": "Er schläft.", "hypothesis": "Er ist wach.", "label": 2},
        {"premise": "a", "hypothesis": "b", "label": -1},  # hidden label: dropped
    ])
    rows = read_examples(tmp_path, TASKS["xnli"], "dev", ["de"])
    assert rows == [{"sentence1": "Er schläft.", "sentence2": "Er ist wach.", "label": "contradiction"}]

    write_task_files(tmp_path, TASKS["qqp"], "train", "en", [{"question1": "q1?", "question2": "q2?", "label": 1}])
    assert read_examples(tmp_path, TASKS["qqp"], "train", ["en"])[0]["label"] == "1"

    write_task_files(tmp_path, TASKS["commonsenseqa"], "dev", "en", [{
        "id": "c1", "question": "Where do fish live?", "answerKey": "B",
        "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["tree", "water", "sky", "desk", "car"]}}])
    mc = read_examples(tmp_path, TASKS["commonsenseqa"], "dev", ["en"])[0]
    assert mc["choices"][mc["label"]] == "water" and mc["context"] == ""

    write_task_files(tmp_path, TASKS["socialiqa"], "dev", "en", [{
        "context": "c", "question": "q", "answerA": "x", "answerB": "y", "answerC": "z", "label": "3"}])
    assert read_examples(tmp_path, TASKS["socialiqa"], "dev", ["en"])[0]["label"] == 2

    write_task_files(tmp_path, TASKS["panx"], "dev", "de", [
        {"tokens": ["Angela", "Merkel", "spricht"], "ner_tags": [1, 2, 0]}], ["O", "B-PER", "I-PER"])
    tagged = read_examples(tmp_path, TASKS["panx"], "dev", ["de"])
    assert tagged == [{"tokens": ["Angela", "Merkel", "spricht"], "tags": ["B-PER", "I-PER", "O"]}]

    write_task_files(tmp_path, TASKS["squad"], "dev", "en", [{
        "id": "s1", "context": "Paris is in France.", "question": "Where is Paris?",
        "answers": {"text": ["France"], "answer_start": [12]}}])
    qa = read_examples(tmp_path, TASKS["squad"], "dev", ["en"])[0]
    assert qa["context"][qa["answers"][0]["answer_start"]:].startswith("France")

    write_task_files(tmp_path, TASKS["tatoeba"], "test", "de", [{"source_sentence": "Hallo", "target_sentence": "Hi"}])
    assert (tmp_path / "download/tatoeba/tatoeba.deu-eng.deu").read_text() == "Hallo\n"
    assert (tmp_path / "download/tatoeba/tatoeba.deu-eng.eng").read_text() == "Hi\n"


def test_offline_hub_names_task_hub_id_and_local_path(tmp_path):
    code = (
        "import sys, pathlib\n"
        "from ray_xt.sources import materialize, HubUnavailable\n"
        "try:\n"
        f"    materialize([('pawsx', 'dev', ['de']), ('ccg', 'train', ['en'])], pathlib.Path({str(tmp_path)!r}))\n"
        "except HubUnavailable as err:\n"
        "    print(err); sys.exit(3)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "task 'pawsx' dev de" in out.stdout and "google-research-datasets/paws-x" in out.stdout
    assert str(tmp_path / "download/pawsx/dev-de.tsv") in out.stdout
    assert "task 'ccg' is not on the HF hub" in out.stdout and "intermediate/ccg/train-en.tsv" in out.stdout


@pytest.mark.integration
def test_ray_data_translation_job_writes_loadable_files(tmp_path, ray_local):
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    from ray_xt.micro.build import build_world
    from ray_xt.micro.world import WorldSpec
    from ray_xt.translate import translate_task

    spec = WorldSpec(seed=2, languages=("en",), corpus_sentences=200, train_size=12, dev_size=6, test_size=6,
                     tasks=("mnli", "hellaswag", "squad"))
    root, tok_dir = build_world(spec, 400, tmp_path / "world")
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    mt = tmp_path / "mt"
    BartForConditionalGeneration(BartConfig(
        vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128,
    )).save_pretrained(mt)
    tok.save_pretrained(mt)

    results = translate_task(root, "mnli", ["de", "fr"], str(mt), splits=("train",), batch_size=8, workers=2,
                             max_length=16)
    assert {(r.lang, r.split, r.examples, r.dropped) for r in results} == {("de", "train", 12, 0),
                                                                        ("fr", "train", 12, 0)}
    en = read_examples(root, TASKS["mnli"], "train", ["en"])
    de = read_examples(root, TASKS["mnli"], "train", ["de"])
    assert [r["label"] for r in de] == [r["label"] for r in en]  # same examples, same order

    mc = translate_task(root, "hellaswag", ["de"], str(mt), splits=("dev",), max_length=8)
    rows = read_examples(root, TASKS["hellaswag"], "dev", ["de"])
    assert mc[0].examples == len(rows) == 6 and all(len(r["choices"]) == 4 for r in rows)

    qa = translate_task(root, "squad", ["de"], str(mt), splits=("dev",), max_length=8)
    assert qa[0].examples + qa[0].dropped == 6  # a random model's answers rarely occur in its contexts
    doc = json.loads((root / TASKS["squad"].path("dev", "de")).read_text())
    assert doc["version"] == "1.1" and len(doc["data"][0]["paragraphs"]) == qa[0].examples

    again = translate_task(root, "mnli", ["de"], str(mt), splits=("train",))
    assert again == []  # existing translations are kept, nothing re-translated

    with pytest.raises(Exception, match="cannot be machine-translated"):
        translate_task(root, "ccg", ["de"], str(mt))
