"""MLflow tracking on a real SQLite store: get-or-create by key, nesting, redaction."""

import pickle

from ray_xt.tracking import KEY_TAG, PARENT_TAG, Tracker, redact


def test_redact_secret_like_keys():
    out = redact({"hf_token": "abc", "aws_secret_access_key": "x", "api_key": "y", "learning_rate": 1e-3,
                  "gcp_credentials": "z", "db_password": "p"})
    assert out == {"hf_token": "<redacted>", "aws_secret_access_key": "<redacted>", "api_key": "<redacted>",
                   "learning_rate": 1e-3, "gcp_credentials": "<redacted>", "db_password": "<redacted>"}


def test_run_for_is_idempotent_and_nests(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "ray_xt/test")
    parent = tracker.run_for("stage/abc", "stage", {"stage": "target"})
    child = tracker.run_for("stage/abc/t1", "trial", {"scale": "micro-s"}, parent_run_id=parent)
    assert tracker.run_for("stage/abc", "stage", {}) == parent
    assert tracker.run_for("stage/abc/t1", "trial", {}, parent_run_id=parent) == child
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert len(runs) == 2
    child_run = tracker.client.get_run(child)
    assert child_run.data.tags[PARENT_TAG] == parent and child_run.data.tags[KEY_TAG] == "stage/abc/t1"
    tracker.log_params(child, {"learning_rate": 0.001, "hf_token": "secret"})
    tracker.log_params(child, {"learning_rate": 0.001})  # params are write-once: no error on repeat
    params = tracker.client.get_run(child).data.params
    assert params["hf_token"] == "<redacted>" and float(params["learning_rate"]) == 0.001


def test_tracker_pickles_without_its_client(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "ray_xt/test")
    tracker.run_for("k", "n", {})
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone._client is None and clone.find_run("k") is not None


def test_concurrent_stages_logging_one_data_set_both_get_it(tmp_path):
    """Stage drivers log the same manifest entry at once (parallel_stages): every run lists it. (Four raw
    ``log_inputs`` calls at once fail in about 2 of 5 rounds here, so five rounds catch a lost retry.)"""
    import threading

    from ray_xt.tracking import Tracker

    info = {"source": {"kind": "file", "file": "/data/mnli/train-en.tsv"}, "digest": "abc123", "rows": 10}
    for round_ in range(5):
        uri = f"sqlite:///{tmp_path / f'm{round_}.db'}?timeout=60"
        runs = [Tracker(uri, "x").run_for(f"k{i}", f"r{i}", {}) for i in range(4)]
        threads = [threading.Thread(target=Tracker(uri, "x").log_datasets,
                                    args=(run, [("mnli/train/en", info, "training")])) for run in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client = Tracker(uri, "x").client
        for run in runs:
            assert [d.dataset.name for d in client.get_run(run).inputs.dataset_inputs] == ["mnli/train/en"]


def test_a_live_server_with_basic_auth_lets_valid_credentials_in_and_names_the_user_it_refuses(
        mlflow_auth_server, monkeypatch, capfd):
    """Against `mlflow server --app-name basic-auth`: credentials in the URI or in MLflow's env vars pass the pre-Ray
    check; wrong or missing ones are refused up front (naming the user, never the password); a tracked run prints
    no URL with the password in it."""
    import urllib.parse

    import pytest

    from conftest import AUTH_PASSWORD, AUTH_USER
    from ray_xt.tracking import TrackingUnavailable, check_tracking_server

    host = urllib.parse.urlsplit(mlflow_auth_server).netloc
    good = f"http://{AUTH_USER}:{AUTH_PASSWORD}@{host}"
    check_tracking_server(good)
    with pytest.raises(TrackingUnavailable) as refused:
        check_tracking_server(f"http://{AUTH_USER}:not-the-password@{host}")
    assert f"refuses the credentials of user '{AUTH_USER}' (HTTP 401)" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    with pytest.raises(TrackingUnavailable, match="refuses requests without credentials"):
        check_tracking_server(mlflow_auth_server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", AUTH_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", AUTH_PASSWORD)
    check_tracking_server(mlflow_auth_server)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")

    tracker = Tracker(good, "ray_xt/auth")
    run = tracker.run_for("stage/auth", "stage", {"stage": "target"})
    tracker.log_params(run, {"learning_rate": 0.001})
    tracker.finish(run)
    assert tracker.client.get_run(run).info.status == "FINISHED"
    out, err = capfd.readouterr()
    assert AUTH_PASSWORD not in out + err
