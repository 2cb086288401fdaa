"""Study storage given as a URI (ray_xt.storage): the same path s3:// and gs:// take, offline through pyarrow's
``file://`` filesystem - stage records, features, checkpoints, predictions and reports are written to the URI, and
every reader (a trial starting from its upstream checkpoint, an evaluation, a driver on a fresh node) works on a
node-local copy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_study
from ray_xt import storage
from ray_xt.storage import StudyStorage, storage_problem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def node_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_XT_NODE_CACHE", str(tmp_path / "node"))
    return tmp_path / "node"


def test_a_uri_storage_publishes_whole_folders_and_reads_through_node_local_copies(tmp_path, node_cache):
    remote = tmp_path / "bucket"
    study = StudyStorage(f"file://{remote}", "s")
    assert study.remote and study.location == f"file://{remote}/s" and node_cache in study.local.parents

    storage.write_text(storage.join(study.location, "stages", "k.json"), '{"a": 1}\n')
    assert (remote / "s" / "stages" / "k.json").read_text() == '{"a": 1}\n'
    assert storage.read_text(storage.join(study.location, "stages", "k.json")) == '{"a": 1}\n'
    assert storage.read_text(storage.join(study.location, "stages", "none.json")) is None

    folder = study.local / "features" / "f1"
    folder.mkdir(parents=True)
    (folder / "data.arrow").write_bytes(b"x" * 10)
    assert not study.published(folder)
    location = study.publish(folder)
    assert location == f"file://{remote}/s/features/f1" and study.published(folder)
    assert (remote / "s" / "features" / "f1" / "data.arrow").read_bytes() == b"x" * 10
    copy = storage.materialize(location)
    assert copy != remote / "s" / "features" / "f1" and node_cache in copy.parents
    assert (copy / "data.arrow").read_bytes() == b"x" * 10 and storage.materialize(location) == copy
    assert study.local_of(location) == folder
    # Tune reports checkpoint paths inside the storage's filesystem, without the scheme
    assert study.checkpoint_location(f"{remote}/s/tune/x/checkpoint_000001") == f"file://{remote}/s/tune/x/checkpoint_000001"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        storage.materialize(f"file://{remote}/s/absent")

    plain = StudyStorage(str(tmp_path / "shared"), "s")  # a folder: read and written in place
    assert not plain.remote and plain.location_of(plain.local / "x") == str(tmp_path / "shared" / "s" / "x")
    assert storage.materialize(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("given, message", [
    ("foo://bar/x", "pyarrow.fs (Ray Tune's storage) has no filesystem for foo://"),
    ("file://results", "a file:// URI needs an absolute path"),
    ("s3://", "names no bucket or folder"),
])
def test_a_storage_uri_nothing_can_open_is_refused_before_anything_runs(tmp_path, given, message):
    assert message in storage_problem(given)
    from ray_xt.config import ConfigError, parse_study

    with pytest.raises(ConfigError, match="storage"):
        parse_study({**tiny_study(tmp_path, tmp_path / "cache"), "storage": given})
    assert storage_problem("results") is None and storage_problem("s3://bucket/ray_xt") is None


@pytest.mark.integration
def test_a_study_on_uri_storage_keeps_everything_there_and_resumes_from_it(tmp_path, micro_cache):
    """`ray-xt run` with storage: file://...: an intermediate stage's checkpoint reaches the target stage through
    the URI; after the node-local copies are gone, a second run finds every stage there and runs nothing."""
    remote = tmp_path / "bucket"
    study = tiny_study(tmp_path, micro_cache, storage=f"file://{remote}/results",
                       intermediate={"tasks": ["mnli"], "conditions": ["en"]},
                       search={"num_samples": 1, "max_concurrent": 1}, trial={"epochs": 1})
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {**os.environ, "RAY_XT_NODE_CACHE": str(tmp_path / "node")}

    def run(*command):
        result = subprocess.run([str(Path(sys.executable).parent / "ray-xt"), *command, str(path)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        return result.stdout

    out = run("run")
    there = remote / "results" / "tiny"
    records = [json.loads(p.read_text()) for p in sorted((there / "stages").glob("*.json"))]
    assert len(records) == 3
    intermediate = next(r for r in records if r["stage"]["stage"] == "intermediate")
    upstream = intermediate["sweep"]["best_model_dir"]
    assert upstream.startswith(f"file://{there}/tune/") and upstream.endswith("/model")
    trained_from = [r for r in records if r["trial_spec"]["model_path"] == upstream]
    assert len(trained_from) == 1  # the target stage after mnli[en] started from the URI checkpoint
    assert (Path(upstream.removeprefix("file://")) / "config.json").is_file()
    assert all((d / ".published").exists() for d in (there / "features").iterdir())
    assert list((there / "predictions").iterdir()) and (there / "report" / "comparison.md").is_file()
    assert (remote / "results" / "throughput.json").is_file()
    assert f"report: file://{there}/report" in out
    assert not list(tmp_path.glob("file*")) and not (tmp_path / "results").exists()  # nothing local by mistake
    copies = list((tmp_path / "node" / "copies").iterdir())
    assert copies  # trials and evaluations read node-local copies of URI features and checkpoints

    shutil.rmtree(tmp_path / "node")  # a fresh node: nothing local, everything on the storage
    again = run("run")
    assert "3 done before (skipped), 0 to run" in again
    report = run("report")
    assert f"report: file://{there}/report" in report
