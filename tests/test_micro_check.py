"""`ray-xt micro check` on the smallest scale: the validity table, on real engines (slow)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_study


@pytest.mark.slow
@pytest.mark.timeout(1600)
def test_micro_check_prints_accuracy_beside_chance(tmp_path):
    study = tiny_study(
        tmp_path, tmp_path / "cache", name="check",
        micro={"train_size": 4000, "dev_size": 200, "corpus_sentences": 2000, "pretrain_steps": 1600, "vocab_size": 2000},
        target={"tasks": ["xnli", "pawsx"]},
        trial={"epochs": 2, "max_train_examples": 4000},
        search={"learning_rate": {"low": 1e-4, "high": 1e-3}, "initial_learning_rate": 5e-4, "num_samples": 1,
                "max_concurrent": 1},
        scheduler={"enabled": False},
    )
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = subprocess.run([str(Path(sys.executable).parent / "ray-xt"), "micro", "check", str(path)],
                          capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table, verdict = proc.stdout.split("the best constant prediction on English dev):")[1].split("Verdict at micro-s")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("|") and not line.startswith("|:")}
    header = rows.pop("language")
    assert header == ["xnli/micro-s", "pawsx/micro-s", "xnli chance", "pawsx chance"]
    assert set(rows) == {"en", "qca", "qso", "avg (zero-shot)"}
    en_xnli, _, xnli_chance, pawsx_chance = map(float, rows["en"])
    assert 30 <= xnli_chance <= 40 and 45 <= pawsx_chance <= 55  # majority-class rates of balanced dev sets
    # English NLI is learnable by the smallest scale: clearly above chance after two epochs
    assert en_xnli > xnli_chance + 5
    # the verdict judges each zero-shot language of each accuracy task against the binomial at chance
    judged = [line.split("|")[1:3] for line in verdict.splitlines() if line.startswith("| xnli") or line.startswith("| pawsx")]
    assert sorted((t.strip(), lang.strip()) for t, lang in judged) == [
        ("pawsx", "qca"), ("pawsx", "qso"), ("xnli", "qca"), ("xnli", "qso")]
    assert "Larger scales transfer better on average: not tested (one scale" in verdict
    written = (tmp_path / "results" / "check" / "report" / "validity.md").read_text()
    assert "Verdict at micro-s" in written
    # and in the check's MLflow summary run, for review beside its stages
    from mlflow.tracking import MlflowClient

    client = MlflowClient(study["tracking"]["uri"])
    runs = client.search_runs([client.get_experiment_by_name("ray_xt/check").experiment_id], max_results=100)
    summary = [r for r in runs if r.data.tags.get("stage") == "summary"]
    assert len(summary) == 1
    assert "validity.md" in {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert "Verdict at micro-s" in summary[0].data.tags["mlflow.note.content"]
