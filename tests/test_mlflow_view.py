"""The MLflow address printed for a study opens its runs table (Model-training view) with ray_xt's columns."""

import json

from ray_xt.mlflow_view import COLUMNS, VIEW_TAG, publish_runs_view, runs_table_url, study_urls, ui_base
from ray_xt.tracking import Tracker


def test_the_address_names_the_runs_tab_the_workflow_and_the_view_and_never_a_password():
    assert ui_base("http://admin:secret@10.0.0.5:5000/") == "http://10.0.0.5:5000"
    assert ui_base("sqlite:///mlruns.db") == "http://127.0.0.1:5000"  # `make mlflow-ui`
    url = runs_table_url("http://admin:secret@127.0.0.1:5000", "7")
    assert url == ("http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
                   "&viewStateShareKey=ray-xt")


def test_the_view_is_written_into_the_study_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = Tracker(uri, "ray_xt/demo")
    url = publish_runs_view(tracker)
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    state = json.loads(experiment.tags[VIEW_TAG])
    assert state["selectedColumns"] == list(COLUMNS)
    assert "metrics.`zero_shot.avg`" in state["selectedColumns"] and "tags.`condition`" in state["selectedColumns"]
    assert url.endswith(f"/#/experiments/{tracker.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=ray-xt")
    Tracker(uri, "other")  # not a ray_xt study: not listed
    tracker.client.create_experiment("other")
    assert study_urls(uri) == [("ray_xt/demo", url)]
