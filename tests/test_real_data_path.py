"""The real data path, offline, on fixtures in the exact upstream formats (tests/real_formats.py): hub dataset
repos in a mirror, XTREME's translations bucket, xtreme's download layouts, an XLM-R-format checkpoint."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ray_xt.config import parse_study
from ray_xt.data import read_examples
from ray_xt.families import DataError
from ray_xt.prepare import data_needs, prepare_data
from ray_xt.sources import HubUnavailable, materialize
from ray_xt.tasks.registry import TASKS, UDPOS_HUB_MERGED, XTREME_LANGUAGES
from real_formats import (
    build_bucc,
    build_hub_mirror,
    build_model_mirror,
    build_translations,
    corpus_for_tokenizer,
    place_translated_choices,
    place_xtreme_udpos,
)

SHARED = Path(os.environ["RAY_XT_SHARED_DATA"]) if os.environ.get("RAY_XT_SHARED_DATA") else None
ROOT = Path(__file__).resolve().parents[1]
# no network: the offline switches, and an endpoint where nothing listens, so any request fails loudly
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}
TARGETS = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_hub_mirror(tmp_path_factory.mktemp("hub") / "mirror", SHARED)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_model_mirror(root, corpus_for_tokenizer(SHARED))
    return root


def phang_shaped(tmp_path: Path, mirror: Path, translations: Path | None, **changes) -> dict:
    """data.source hub, all nine XTREME targets, intermediate tasks of three families in English and translated."""
    study = {
        "name": "phang-offline",
        "data": {"source": "hub", "root": str(tmp_path / "xtreme"), "hub_mirror": str(mirror), "udpos_hub": True,
                 **({"translations": str(translations)} if translations else {})},
        "scales": ["xlmr-base"],
        "intermediate": {"tasks": ["mnli", "squad", "hellaswag"], "conditions": ["en", "translate-train"],
                         "languages": ["ar", "de"]},
        "target": {"tasks": TARGETS},
        "seeds": [0],
        "trial": {"epochs": 1, "batch_size": 8, "max_seq_length": 96, "max_train_examples": 16,
                  "max_eval_examples": 8, "evals_per_epoch": 1, "cpus": 1, "gpus": 0},
        "task_overrides": {t: {"max_seq_length": 256, "doc_stride": 64} for t in ("squad", "xquad", "mlqa", "tydiqa")},
        "search": {"num_samples": 1, "max_concurrent": 1, "learning_rate": {"low": 1e-4, "high": 1e-3}},
        "scheduler": {"enabled": False},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}"},
        "storage": str(tmp_path / "results"),
    }
    study.update(changes)
    tasks = set(study["target"]["tasks"]) | set(study["intermediate"].get("tasks", []))
    study["task_overrides"] = {t: v for t, v in study["task_overrides"].items() if t in tasks}
    if "udpos" in tasks:  # XTREME's own UD-POS where the hub's config merges other treebanks (refused)
        place_xtreme_udpos(tmp_path / "xtreme", sorted(UDPOS_HUB_MERGED))
    return study


def test_translations_hold_the_translated_columns_and_a_held_out_dev(tmp_path):
    translations = build_translations(tmp_path / "translations", ["de", "ar"], shared=SHARED)
    root = tmp_path / "xtreme"
    written = materialize([("mnli", "train", ["de", "ar"]), ("mnli", "dev", ["de", "ar"])], root,
                          translations=translations, hub=False)
    assert {(w["split"], w["lang"]) for w in written} == {("train", "de"), ("dev", "de"), ("train", "ar"), ("dev", "ar")}
    for lang in ("de", "ar"):
        rows = [line.split("\t") for line in
                (translations / f"XNLI/translate-train/en-{lang}-translated.tsv").read_text().splitlines()]
        english = {r[0] for r in rows} | {r[1] for r in rows}
        translated = {r[2] for r in rows if len(r) == 5}
        train = read_examples(root, TASKS["mnli"], "train", [lang])
        dev = read_examples(root, TASKS["mnli"], "dev", [lang])
        for example in train + dev:  # columns 3-5, never XTREME readers' first three (the English pair)
            assert example["sentence1"] in translated and example["sentence1"] not in english
        assert all(e["label"] in TASKS["mnli"].labels for e in train + dev)  # 'contradictory' mapped
        assert len(train) + len(dev) == 40  # the malformed row is skipped
        assert dev and not {e["sentence1"] for e in dev} & {e["sentence1"] for e in train}
    # the same English examples are held out in every language
    held = {}
    for lang in ("de", "ar"):
        by_text = {r[2]: r[0] for r in (line.split("\t") for line in (
            translations / f"XNLI/translate-train/en-{lang}-translated.tsv").read_text().splitlines()) if len(r) == 5}
        held[lang] = {by_text[e["sentence1"]] for e in read_examples(root, TASKS["mnli"], "dev", [lang])}
    assert held["de"] == held["ar"]

    squad = {w["split"]: w for w in materialize([("squad", "dev", ["de"])], root, translations=translations, hub=False)}
    assert squad["dev"]["source"]["file"].endswith("SQuAD/translate-dev/squad.translate.dev.en-de.json")
    assert squad["train"]["source"]["file"].endswith("SQuAD/translate-train/squad.translate.train.en-de.json")
    before = (root / TASKS["mnli"].path("train", "de")).stat().st_mtime_ns
    assert materialize([("mnli", "train", ["de"])], root, translations=translations, hub=False) == []
    assert (root / TASKS["mnli"].path("train", "de")).stat().st_mtime_ns == before  # never rewritten


def test_a_held_out_dev_is_never_cut_beside_a_training_file_from_elsewhere(tmp_path):
    translations = build_translations(tmp_path / "translations", ["de"], shared=SHARED)
    root = tmp_path / "xtreme"
    mine = root / TASKS["mnli"].path("train", "de")
    mine.parent.mkdir(parents=True)
    mine.write_text("ein Satz\tnoch einer\tneutral\n")  # e.g. `ray-xt translate --splits train` output
    with pytest.raises(HubUnavailable, match="train-de.tsv exists but .*dev-de.tsv does not"):
        materialize([("mnli", "dev", ["de"])], root, translations=translations, hub=False)
    assert mine.read_text() == "ein Satz\tnoch einer\tneutral\n" and not (mine.parent / "dev-de.tsv").exists()


def test_english_rows_never_stand_under_another_languages_name(tmp_path, mirror):
    """Without a translation, a target-language condition is refused (naming both ways to get the data), even
    though the hub mirror has the English task: it is never written under the other language's name."""
    root = tmp_path / "xtreme"
    with pytest.raises(HubUnavailable) as err:
        materialize([("mnli", "train", ["en", "de", "sw"]), ("qqp", "train", ["de"])], root, mirror=mirror,
                    translations=None)
    message = str(err.value)
    assert "task 'mnli': no target-language data for de,sw" in message
    assert f"ray-xt translate --root {root} --task mnli --languages de,sw --model <MT model>" in message
    assert "data.translations" in message
    assert "PAWS-X" in message and "task 'qqp'" in message  # PAWS-X translate-train is not QQP translated
    assert (root / "intermediate/mnli/train-en.tsv").is_file()  # English came from the mirror
    assert not list((root / "intermediate").glob("*/train-de.*"))


def test_paws_x_translations_never_stand_in_for_qqp(tmp_path):
    translations = build_translations(tmp_path / "translations", ["de"], shared=SHARED)
    paws = translations / "PAWSX/translate-train/en-de-translated.tsv"
    paws.parent.mkdir(parents=True)
    paws.write_text("a\tb\tein\tzwei\t1\n")
    with pytest.raises(HubUnavailable, match="not QQP"):
        materialize([("qqp", "train", ["de"])], tmp_path / "xtreme", translations=translations, hub=False)


def test_udpos_languages_without_a_dev_set_are_scored_on_test(mirror, tmp_path):
    cfg = parse_study(phang_shaped(tmp_path, mirror, None, intermediate={}, target={"tasks": ["udpos"]}))
    needs = {(t, s): langs for t, s, langs in data_needs(cfg)}
    assert set(needs[("udpos", "test")]) == set(XTREME_LANGUAGES["udpos"].split(","))  # scored or submitted
    assert not {"kk", "tl", "th", "yo"} & set(needs[("udpos", "dev")])
    assert TASKS["udpos"].eval_split_for("th") == "test" and TASKS["udpos"].eval_split_for("de") == "dev"
    from ray_xt.sources import load_hub_rows

    with pytest.raises(HubUnavailable, match="no 'dev' split in language 'th'"):
        load_hub_rows(TASKS["udpos"], "dev", "th", mirror)
    assert len(load_hub_rows(TASKS["udpos"], "test", "th", mirror)) == 8


def test_blank_gold_is_named_not_scored(tmp_path):
    """xtreme's download_data.sh blanks test annotations (remove_qa_test_annotations): XQuAD, scored on test,
    is refused with the reason, before anything runs."""
    root = tmp_path / "xtreme"
    for lang in ("en", "de"):
        doc = {"version": "1.1", "data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
            {"id": f"q-{lang}", "question": "Where?", "answers": [{"answer_start": 0, "text": ""}]}]}]}]}
        path = root / TASKS["xquad"].path("test", lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    squad = {"version": "1.1", "data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "s", "question": "Where?", "answers": [{"answer_start": 12, "text": "France"}]}]}]}]}
    for split in ("train", "dev"):
        (root / TASKS["squad"].path(split, "en")).parent.mkdir(parents=True, exist_ok=True)
        (root / TASKS["squad"].path(split, "en")).write_text(json.dumps(squad))
    cfg = parse_study({"name": "x", "data": {"source": "xtreme_dir", "root": str(root)}, "scales": ["xlmr-base"],
                       "target": {"tasks": ["xquad"], "languages": ["en", "de"]}, "trial": {"max_seq_length": 384}})
    with pytest.raises(DataError, match="has no gold labels or answers .* cannot be scored"):
        prepare_data(cfg)


def test_xtreme_preprocessed_tatoeba_is_named_not_scored(tmp_path):
    directory = tmp_path / "download" / "tatoeba"
    directory.mkdir(parents=True)
    (directory / "de-en.de").write_text("Hallo\nDanke\n")
    (directory / "de-en.en").write_text("Hello\nThanks\n")  # sorted, as utils_preprocess.py leaves it
    with pytest.raises(DataError, match="English side is sorted"):
        read_examples(tmp_path, TASKS["tatoeba"], "test", ["de"])


def test_span_qa_head_from_a_classification_checkpoint_has_start_and_end_logits(tmp_path, models):
    """XQuAD after an MNLI intermediate stage: the checkpoint's 3 labels must not size the QA head."""
    from transformers import AutoModelForSequenceClassification

    from ray_xt.families import family_of

    nli = AutoModelForSequenceClassification.from_pretrained(str(models / "FacebookAI/xlm-roberta-base"), num_labels=3)
    nli.save_pretrained(tmp_path / "mnli-checkpoint")
    qa = family_of(TASKS["xquad"]).load_model(str(tmp_path / "mnli-checkpoint"), 0, fresh_head=True)
    assert qa.qa_outputs.out_features == 2


def test_missing_models_are_named_before_ray(tmp_path, mirror, ray_never_started):
    from typer.testing import CliRunner

    from ray_xt.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(phang_shaped(tmp_path, mirror, None, intermediate={}, target={"tasks": ["pawsx"]},
                                                model_paths={"xlmr-base": str(tmp_path / "nowhere")})))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert f"scale 'xlmr-base': no model at {tmp_path / 'nowhere'}" in result.output


def _offline_cli(args: list[str], env_extra: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, **env_extra}
    return subprocess.run([str(ROOT / ".venv/bin/ray-xt"), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.mark.integration
def test_data_prepare_fetches_everything_from_the_mirror_with_a_manifest(tmp_path, mirror, models):
    translations = build_translations(tmp_path / "translations", ["de", "ar"], shared=SHARED)
    place_translated_choices(tmp_path / "xtreme", "hellaswag", ["ar", "de"])
    build_bucc(tmp_path / "xtreme")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(phang_shaped(tmp_path, mirror, translations)))

    plan = _offline_cli(["plan", str(path)], {"RAY_XT_MODEL_MIRROR": str(models)}, tmp_path, 300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "xnli: to fetch (" in plan.stdout and "bucc2018: present" in plan.stdout

    out = _offline_cli(["data", "prepare", str(path)], {"RAY_XT_MODEL_MIRROR": str(models)}, tmp_path, 600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    manifest = {(e["task"], e["split"], e["lang"]): e
                for e in json.loads((tmp_path / "xtreme/manifest.json").read_text())["entries"]}
    for task in TARGETS:  # every language of every target task, with its source and checksums
        scored = {lang for (t, _, lang) in manifest if t == task}
        expected = set(XTREME_LANGUAGES[task].split(","))
        assert scored == expected, (task, expected - scored)
    xnli = manifest[("xnli", "dev", "sw")]
    snapshot = {k: xnli["source"].pop(k) for k in ("commit", "files", "snapshot")}  # what the mirror folder held
    assert xnli["source"] == {"kind": "hub_mirror", "dataset": "facebook/xnli", "config": "sw", "split": "validation",
                              "revision": "main", "path": str(mirror / "facebook/xnli")}
    assert snapshot["commit"] is None and snapshot["files"] > 0 and len(snapshot["snapshot"]) == 16
    assert manifest[("mlqa", "test", "hi")]["source"]["dataset"] == "google/xtreme"
    assert manifest[("mnli", "train", "de")]["source"]["kind"] == "translations"
    assert "held" in manifest[("mnli", "dev", "de")]["source"]["heldout"]
    assert manifest[("hellaswag", "train", "de")]["source"] == {"kind": "file"}
    for entry in manifest.values():
        assert entry["rows"] > 0 and all(len(f["sha256"]) == 64 for f in entry["files"])
    assert "| xnli | dev | 15 |" in out.stdout and "fetched now" in out.stdout
    # the hub's UD-POS is its loader's build, not XTREME's: said once, and kept with each file's source
    assert "[ray-xt] note: udpos from the hub is built from UD 2.5 by google/xtreme's own loader" in out.stdout
    assert "download_data.sh" in manifest[("udpos", "test", "de")]["source"]["caveat"]
    assert manifest[("udpos", "test", "el")]["source"] == {"kind": "file"}  # XTREME's own file: merged config refused
    assert (tmp_path / "xtreme/labels/tatoeba/test-de.tsv").is_file()
    assert (tmp_path / "xtreme/labels/bucc2018/test-de.tsv").read_text().startswith("de-test-")

    again = _offline_cli(["data", "prepare", str(path)], {"RAY_XT_MODEL_MIRROR": str(models)}, tmp_path, 600)
    assert again.returncode == 0 and "fetched now" not in again.stdout  # nothing refetched or rewritten
    plan = _offline_cli(["plan", str(path)], {"RAY_XT_MODEL_MIRROR": str(models)}, tmp_path, 300)
    assert "xnli: present" in plan.stdout


@pytest.mark.integration
def test_an_unreachable_hub_is_one_line_per_cause_with_every_item_in_a_file(tmp_path, models):
    """Every XTREME target with a hub source and two intermediate tasks, offline and without a mirror: hundreds
    of (task, split, language) sets fail for one reason, which the console says once, with counts."""
    study = {"name": "offline", "data": {"source": "hub", "root": str(tmp_path / "xtreme"), "udpos_hub": True},
             "scales": ["xlmr-base"],
             "intermediate": {"tasks": ["mnli", "squad"], "conditions": ["en"]},
             "target": {"tasks": [t for t in TARGETS if t != "bucc2018"]},
             "task_overrides": {t: {"max_seq_length": 256, "doc_stride": 64} for t in ("squad", "xquad", "mlqa", "tydiqa")},
             "tracking": {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}"}, "storage": str(tmp_path / "results")}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = _offline_cli(["data", "prepare", str(path)], {"RAY_XT_MODEL_MIRROR": str(models)}, tmp_path, 600)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) <= 25, "\n".join(lines)
    hub = [line for line in lines if "could not load from the HF hub" in line]
    assert len(hub) == 1, "\n".join(lines)
    total = int(re.search(r": (\d+) items from (\d+) dataset\(s\)", hub[0]).group(1))
    assert total > 100 and "data.hub_mirror" in hub[0]
    listed = (tmp_path / "xtreme" / "prepare_problems.txt").read_text().splitlines()
    assert str(tmp_path / "xtreme" / "prepare_problems.txt") in out.stdout + out.stderr
    assert sum("could not load from the HF hub" in line for line in listed) == total


@pytest.mark.integration
def test_every_registry_dataset_loads_from_the_mirror_offline(mirror, tmp_path):
    """Each hub id of the registry (and each kind of config) through the same load_dataset call as the hub."""
    code = (
        "import sys, pathlib\n"
        "from ray_xt.sources import load_hub_rows\n"
        "from ray_xt.tasks.registry import TASKS\n"
        "for name, task in TASKS.items():\n"
        "    if task.hub is None: continue\n"
        "    split = 'train' if 'train' in task.hub.splits else next(iter(task.hub.splits))\n"
        "    lang = 'de' if name in ('xnli', 'pawsx', 'udpos', 'panx', 'xquad', 'mlqa', 'tatoeba') else 'en'\n"
        "    if name in ('xquad', 'tatoeba'): split = 'test'\n"
        "    rows = load_hub_rows(task, split, lang, pathlib.Path(sys.argv[1]))\n"
        "    print(name, task.hub.dataset, len(rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(mirror)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **OFFLINE})
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = {line.split()[0]: int(line.split()[2]) for line in out.stdout.splitlines()}
    assert set(loaded) == {n for n, t in TASKS.items() if t.hub is not None}
    assert all(n > 0 for n in loaded.values())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_phang2020_shaped_study_runs_offline_from_mirrors_to_a_scored_submission(tmp_path, mirror, models):
    """`ray-xt run` of a phang2020-shaped study (data.source hub, all nine XTREME targets, three intermediate
    families in English and translated) with every hub behind a mirror and the network unusable, then
    `ray-xt score` of its baseline submission against the gold labels ray-xt prepared."""
    from mlflow.tracking import MlflowClient

    translations = build_translations(tmp_path / "translations", ["de", "ar"], shared=SHARED)
    place_translated_choices(tmp_path / "xtreme", "hellaswag", ["ar", "de"])
    build_bucc(tmp_path / "xtreme")
    study = phang_shaped(tmp_path, mirror, translations)
    path = tmp_path / "phang.yaml"
    path.write_text(yaml.safe_dump(study))
    hf_home = tmp_path / "hf"
    env = {"RAY_XT_MODEL_MIRROR": str(models), "HF_HOME": str(hf_home)}
    run = _offline_cli(["run", str(path)], env, tmp_path, 1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "69 stages" in run.stdout and "FAILED" not in run.stdout
    assert not (hf_home / "hub").exists() or not any((hf_home / "hub").iterdir())  # no model came from the hub

    # the target-language intermediate data are XTREME's translated columns
    english = set()
    for line in (translations / "XNLI/translate-train/en-de-translated.tsv").read_text().splitlines():
        english.update(line.split("\t")[:2])
    trained = (tmp_path / "xtreme/intermediate/mnli/train-de.tsv").read_text().splitlines()
    assert trained and not {line.split("\t")[0] for line in trained} & english

    cfg = parse_study(study)
    records = [json.loads(p.read_text()) for p in (tmp_path / "results/phang-offline/stages").glob("*.json")]
    assert len(records) == 69
    for record in records:
        if record["stage"]["stage"] != "intermediate":
            task = record["stage"]["task"]
            assert set(record["zero_shot"]) == set(cfg.languages_for(task)), task  # every language scored
    udpos = next(r for r in records if r["stage"]["task"] == "udpos")
    assert udpos["zero_shot_splits"]["th"] == "test" and udpos["zero_shot_splits"]["de"] == "dev"

    client = MlflowClient(tracking_uri=study["tracking"]["uri"])
    experiment = client.get_experiment_by_name("ray_xt/phang-offline")
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'intermediate'", max_results=100)
    translated = next(r for r in runs if r.data.tags["task"] == "mnli" and r.data.tags["condition"] == "translate-train"
                      and "mlflow.parentRunId" not in r.data.tags)  # the stage's run, not its trials'
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == translated.info.run_id)
    assert child.data.tags["task"] == "mnli"
    names = {d.dataset.name: d.dataset for d in client.get_run(translated.info.run_id).inputs.dataset_inputs}
    assert {"mnli/train/de", "mnli/train/ar", "mnli/dev/de"} <= set(names)
    assert json.loads(names["mnli/train/de"].source)["origin"].startswith("XTREME's XNLI translate-train")

    # the submissions scored against the gold ray-xt prepared: the report's like-for-like table
    xnli = next(r for r in records if r["stage"]["task"] == "xnli" and r["stage"]["condition"] == "none")
    assert set(xnli["test_metrics"]) == set(XTREME_LANGUAGES["xnli"].split(","))
    report = (tmp_path / "results/phang-offline/report/comparison.md").read_text()
    assert "XTREME test scores, like for like" in report and report.startswith("## Headline")
    submission = tmp_path / "submission"
    for stage_dir in (tmp_path / "results/phang-offline/predictions").glob("*-none-*"):
        for task_dir in stage_dir.iterdir():
            (submission / task_dir.name).mkdir(parents=True, exist_ok=True)
            for f in task_dir.iterdir():
                (submission / task_dir.name / f.name).write_bytes(f.read_bytes())
    scored = _offline_cli(["score", "--predictions", str(submission), "--labels", str(tmp_path / "xtreme/labels"),
                           "--json", str(tmp_path / "scores.json")], {}, tmp_path, 300)
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert set(scores["tasks"]) == set(TARGETS) and "all_task" in scores["overall"]


def test_an_intermediate_dev_set_that_is_a_target_evaluation_set_is_refused(tmp_path):
    """A user who puts XNLI's German dev set where MNLI's German dev set belongs would select the target-language
    intermediate model on the zero-shot evaluation: refused before anything runs, naming both files."""
    root = tmp_path / "xtreme"
    rows = [f"Satz {i}\tHypothese {i}\tneutral\n" for i in range(40)]
    files = {TASKS["xnli"].path(s, lang): rows for s in ("dev", "test") for lang in ("en", "de")}
    files[TASKS["xnli"].path("train", "en")] = rows
    files.update({TASKS["mnli"].path(s, lang): [f"own {i}\tpair {i}\tneutral\n" for i in range(40)]
                  for s in ("train", "dev") for lang in ("en", "de")})
    files[TASKS["mnli"].path("dev", "de")] = rows  # XNLI's German dev set, as MNLI's German dev set
    for rel, lines in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("".join(lines))
    cfg = parse_study({"name": "x", "data": {"source": "xtreme_dir", "root": str(root)}, "scales": ["xlmr-base"],
                       "intermediate": {"tasks": ["mnli"], "conditions": ["en", "translate-train-each"]},
                       "target": {"tasks": ["xnli"], "languages": ["en", "de"]}})
    with pytest.raises(DataError, match=r"'mnli' dev de: .*dev-de.tsv shares 40 of its 40 examples with 'xnli' dev de"):
        prepare_data(cfg)
    (root / TASKS["mnli"].path("dev", "de")).write_text("".join(f"eigen {i}\tPaar {i}\tneutral\n" for i in range(40)))
    assert prepare_data(cfg)  # its own dev data: accepted


def test_the_mlm_condition_reads_its_text_from_a_hub_corpus_mirror(tmp_path):
    """intermediate.mlm_corpus through the same load_dataset call, from a snapshot of a per-language text repo
    (wikimedia/wikipedia's layout: a config per dump and language, a `text` column of articles)."""
    from datasets import Dataset, Features, Value

    from ray_xt.corpus import materialize_corpus
    from real_formats import _write_repo

    features = Features({"id": Value("string"), "url": Value("string"), "title": Value("string"),
                         "text": Value("string")})
    articles = {lang: Dataset.from_dict({"id": ["1", "2"], "url": ["u", "u"], "title": ["a", "b"],
                                         "text": ["\n\n".join(f"{lang} Zeile {i}" for i in range(8)),
                                                  "\n".join(f"{lang} Satz {i}" for i in range(8))]},
                                        features=features) for lang in ("de", "ar")}
    _write_repo(tmp_path / "mirror", "wikimedia/wikipedia", {f"20231101.{lang}": {"train": data}
                                                              for lang, data in articles.items()})
    cfg = parse_study({"name": "x", "data": {"source": "hub", "root": str(tmp_path / "xtreme")},
                       "scales": ["xlmr-base"], "target": {"tasks": ["xnli"], "languages": ["en", "de", "ar"]},
                       "intermediate": {"tasks": ["mnli"], "conditions": ["en", "mlm"], "mlm_lines": 10,
                                        "mlm_corpus": {"dataset": "wikimedia/wikipedia", "config": "20231101.{lang}"}}})
    landed = []
    cache = tmp_path / "datasets-cache"
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    try:
        assert materialize_corpus(cfg, tmp_path / "xtreme", ["de", "ar"], tmp_path / "mirror", landed.append) == []
    finally:
        del os.environ["HF_DATASETS_CACHE"]
    assert not list(cache.rglob("*.arrow"))  # streamed: the dump is never converted whole
    lines = (tmp_path / "xtreme/mlm/train-de.txt").read_text().splitlines()
    corpus = {f"de Zeile {i}" for i in range(8)} | {f"de Satz {i}" for i in range(8)}
    assert len(lines) == 10 and set(lines) <= corpus  # non-empty lines of the shuffled documents
    source = landed[0]["source"]
    assert source["config"] == "20231101.de" and source["kind"] == "hub_mirror"
    assert source["sample"] == {"seed": cfg.search.seed, "shuffle_buffer": 10_000} and source["snapshot"]
    again = tmp_path / "again"
    materialize_corpus(cfg, again, ["de"], tmp_path / "mirror")
    assert (again / "mlm/train-de.txt").read_text().splitlines() == lines  # the study's seed: the same sample
    problems = materialize_corpus(cfg, tmp_path / "xtreme", ["sw"], tmp_path / "mirror")
    assert len(problems) == 1 and "intermediate.mlm_corpus sw" in str(problems[0]) \
        and "mlm/train-sw.txt" in str(problems[0])


def test_two_mirrors_of_one_repo_never_share_cached_rows_and_the_manifest_names_the_snapshot(tmp_path):
    """Two snapshots of rajpurkar/squad with the same file layout (24 and 400 training rows), loaded one after the
    other: datasets' cache keyed them alike, so the second load used to return the first one's 24 rows."""
    import random
    import time

    from datasets import Dataset

    from ray_xt.sources import hub_origin, load_hub_rows
    from real_formats import _qa_rows, _write_repo

    for name, n in (("old", 24), ("new", 400)):
        rng = random.Random(0)
        _write_repo(tmp_path / name, "rajpurkar/squad", {"plain_text": {
            "train": Dataset.from_dict(_qa_rows(rng, "en", n, "sq")),
            "validation": Dataset.from_dict(_qa_rows(rng, "en", 8, "v"))}})
    assert len(load_hub_rows(TASKS["squad"], "train", "en", tmp_path / "old")) == 24
    assert len(load_hub_rows(TASKS["squad"], "train", "en", tmp_path / "new")) == 400

    # a snapshot huggingface-cli downloaded records each file's commit and etag: the manifest names the commit
    repo = tmp_path / "new" / "rajpurkar/squad"
    for path in [p for p in repo.rglob("*") if p.is_file()]:
        record = repo / ".cache/huggingface/download" / f"{path.relative_to(repo).as_posix()}.metadata"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"a1b2c3\n{path.stat().st_size:064x}\n{time.time() + 5}\n")
    origin = hub_origin(TASKS["squad"], "train", "en", tmp_path / "new")
    assert origin["commit"] == "a1b2c3" and origin["files"] == 3 and len(origin["snapshot"]) == 16
    assert hub_origin(TASKS["squad"], "train", "en", tmp_path / "old")["commit"] is None  # no download records


def test_xquads_questions_in_squad_dev_are_held_out_by_id_not_refused(tmp_path, mirror, models, ray_never_started):
    """The mirror's SQuAD dev holds XQuAD's English questions under their SQuAD ids, as the real one does. A study
    with an XQuAD target is not refused: those questions are held out of every SQuAD split it trains or selects on
    (by id, so any translation of them too), counted in the manifest and the plan."""
    from typer.testing import CliRunner

    from ray_xt.cli import app
    from ray_xt.data import FeatureCache, load_features
    from ray_xt.provenance import ExampleFiles, held_out_ids

    root = tmp_path / "xtreme"
    study = {"name": "x", "data": {"source": "hub", "root": str(root), "hub_mirror": str(mirror)},
             "scales": ["xlmr-base"], "model_paths": {"xlmr-base": str(models / "FacebookAI/xlm-roberta-base")},
             "target": {"tasks": ["xquad"], "languages": ["en", "de"]},
             "trial": {"max_seq_length": 256, "doc_stride": 64},
             "tracking": {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}"}, "storage": str(tmp_path / "results")}
    cfg = parse_study(study)
    entries = {(e.task, e.split, e.lang): e for e in prepare_data(cfg)}
    xquad_ids = {e["id"] for e in read_examples(root, TASKS["xquad"], "test", ["en"])}
    squad_dev = read_examples(root, TASKS["squad"], "dev", ["en"])
    assert xquad_ids <= {e["id"] for e in squad_dev}  # the overlap the real sources have
    assert entries[("squad", "dev", "en")].held_out == {"examples": len(xquad_ids), "drawn_into": ["xquad"]}
    manifest = json.loads((root / "manifest.json").read_text())["entries"]
    assert [m["held_out"]["examples"] for m in manifest if (m["task"], m["split"]) == ("squad", "dev")] == [len(xquad_ids)]

    held = held_out_ids(cfg, ExampleFiles(root))["squad"]
    assert xquad_ids <= held  # every language's evaluation ids (the real XQuAD's are the same in all)
    dev = FeatureCache(tmp_path / "features").features(root, TASKS["squad"], "dev", ["en"],
                                                      str(models / "FacebookAI/xlm-roberta-base"), max_len=256,
                                                      stride=64, exclude_ids=held)
    kept = {e["id"] for e in load_features(dev)[1]}
    assert len(kept) == len(squad_dev) - len(xquad_ids) and not kept & xquad_ids

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    plan = CliRunner().invoke(app, ["plan", str(tmp_path / "s.yaml")])
    assert f"held out of squad dev en: {len(xquad_ids)} examples drawn into xquad's evaluation" in plan.output


def test_translated_squad_answers_are_relocated_in_the_translated_context_or_dropped_and_counted(tmp_path):
    """Machine translation moves answers: an answer_start that no longer points at its text is moved to the text's
    nearest occurrence; an answer the translated context does not hold is dropped, with its example, and counted."""
    from ray_xt.translations import read_translated_squad, relocated_answer

    context = "Der Rhein fließt durch Basel. Der Rhein ist lang."
    doc = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "kept", "question": "Wo?", "answers": [{"text": "Basel", "answer_start": context.index("Basel")}]},
        {"id": "moved", "question": "Was?", "answers": [{"text": "Rhein", "answer_start": 31}]},
        {"id": "lost", "question": "Wer?", "answers": [{"text": "Donau", "answer_start": 4}]}]}]}]}
    path = tmp_path / "squad.translate.dev.en-de.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    rows, counts = read_translated_squad(path)
    assert [r["id"] for r in rows] == ["kept", "moved"]
    assert rows[1]["answers"][0]["answer_start"] == context.index("Rhein", 20)  # the occurrence nearest to 31
    assert counts == {"answers_relocated": 1, "examples_dropped": 1}
    assert relocated_answer(context, "Basel", 23) == 23 and relocated_answer(context, "Elbe", 0) is None


def test_hub_udpos_configs_that_merge_other_treebanks_are_refused_with_the_fix(tmp_path, mirror):
    """google/xtreme's udpos.Greek holds Ancient Greek too (its loader globs *_Greek* over UD 2.5): refused, with
    XTREME's own files as the fix; with those files in place nothing is fetched for Greek."""
    root = tmp_path / "xtreme"
    with pytest.raises(HubUnavailable) as err:
        materialize([("udpos", "train", ["el", "de"])], root, mirror, udpos_hub=True)
    assert len(err.value.problems) == 1  # German loads; Greek is refused
    text = str(err.value)
    assert "task 'udpos' train el (udpos.Greek: Ancient Greek (PROIEL, Perseus))" in text
    assert "download/udpos/{train,dev,test}-<lang>.tsv" in text and "download_data.sh" in text
    assert (root / TASKS["udpos"].path("train", "de")).is_file()
    place_xtreme_udpos(root, ["el"])
    assert materialize([("udpos", "train", ["el", "de"])], root, mirror) == []  # both there: nothing fetched


def test_hub_udpos_is_fetched_only_when_the_study_accepts_the_hubs_build(tmp_path, mirror):
    """UD-POS is XTREME's own build unless data.udpos_hub says otherwise: without it, nothing is fetched and the fix
    is named."""
    root = tmp_path / "xtreme"
    with pytest.raises(HubUnavailable, match=r"task 'udpos' test de: UD-POS is read as XTREME builds it.*"
                                             r"data.udpos_hub: true"):
        materialize([("udpos", "test", ["de"])], root, mirror)
    assert not (root / TASKS["udpos"].path("test", "de")).exists()
    assert materialize([("udpos", "test", ["de"])], root, mirror, udpos_hub=True)  # accepted: fetched

    from typer.testing import CliRunner

    from ray_xt.cli import app

    study = phang_shaped(tmp_path, mirror, None, intermediate={}, target={"tasks": ["udpos"]})
    study["data"]["udpos_hub"] = False
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    plan = CliRunner().invoke(app, ["plan", str(tmp_path / "s.yaml")])
    assert "udpos: missing (" in plan.output and "or data.udpos_hub: true for the hub's build" in plan.output


def test_a_script_only_repo_mirrored_without_its_parquet_export_is_named_with_the_download(tmp_path, mirror):
    """CosmosQA and SocialIQA are loading scripts on main: only their refs/convert/parquet export loads. A mirror of
    the main branch (a script, no parquet) is named as such, with the command that mirrors the export."""
    from ray_xt.sources import export_status

    script_only = tmp_path / "mirror"
    (script_only / "allenai/cosmos_qa").mkdir(parents=True)
    (script_only / "allenai/cosmos_qa/cosmos_qa.py").write_text("# a datasets loading script\n")
    with pytest.raises(HubUnavailable, match=r"holds no parquet files: allenai/cosmos_qa's main branch is a loading "
                                             r"script .*--revision refs/convert/parquet"):
        materialize([("cosmosqa", "train", ["en"])], tmp_path / "xtreme", script_only)
    assert export_status(TASKS["cosmosqa"], script_only).startswith("mirror has no parquet export")
    assert export_status(TASKS["cosmosqa"], mirror) == "parquet export present in the mirror"
    assert export_status(TASKS["socialiqa"], None).startswith("read from the hub's refs/convert/parquet export")
    assert export_status(TASKS["mnli"], mirror) is None


def test_a_translated_squad_dev_is_held_out_by_the_english_ids_or_refused_without_them(tmp_path, mirror):
    """XTREME's SQuAD translate-dev translates SQuAD v1.1 dev, XQuAD's questions included. Under the English ids
    those questions are held out like the English ones; a translated dev file under ids of its own is refused: which
    of its examples are XQuAD's could not be known."""
    translations = build_translations(tmp_path / "translations", ["de"], shared=SHARED)
    root = tmp_path / "xtreme"
    study = {"name": "x", "data": {"source": "hub", "root": str(root), "hub_mirror": str(mirror),
                                   "translations": str(translations)},
             "scales": ["xlmr-base"], "intermediate": {"tasks": ["squad"], "conditions": ["translate-train-each"],
                                                       "languages": ["de"]},
             "target": {"tasks": ["xquad"], "languages": ["en", "de"]}, "trial": {"max_seq_length": 384}}
    entries = {(e.task, e.split, e.lang): e for e in prepare_data(parse_study(study))}
    xquad_ids = {e["id"] for e in read_examples(root, TASKS["xquad"], "test", ["en"])}
    assert entries[("squad", "dev", "de")].held_out["examples"] == len(xquad_ids)
    assert entries[("squad", "dev", "en")].held_out["examples"] == len(xquad_ids)

    dev_de = root / TASKS["squad"].path("dev", "de")
    doc = json.loads(dev_de.read_text())
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["id"] = "mt-" + qa["id"]  # a translation that renumbered its questions
    dev_de.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(DataError, match=r"task 'squad' dev de: .* is a translation of squad's English dev set, which "
                                        r"holds \d+ examples of the study's evaluation, but its ids are not"):
        prepare_data(parse_study(study))
