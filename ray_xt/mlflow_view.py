"""The address that opens a study's runs table in the MLflow UI, with the columns a reviewer compares.

MLflow 3's UI opens an experiment on the GenAI overview unless its workflow switch says "Model training": the
switch is kept in the browser (local storage ``mlflow.workflowType``, default ``genai``) and read first from the
``workflowType`` query parameter, and the experiment's ``mlflow.experimentKind`` tag is not consulted while the
switch is shown (MLflow 3.17's ``useExperimentKind``). There is no server-side default, so the address says it:
``#/experiments/<id>/runs?workflowType=machine_learning``.

Columns: the runs table restores a shared view from the experiment tag ``mlflow.sharedViewState.<key>`` named by
the ``viewStateShareKey`` parameter (the UI's own "share view" link; the tag holds its state as JSON). ray_xt
writes one such view per study experiment. If a later MLflow stops reading it, the same address still opens the
runs table, with MLflow's default columns.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from ray_xt.tracking_uri import without_password

VIEW_KEY = "ray-xt"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# MLflow's column ids: "<tags|params|metrics|attributes>.`<name>`"
COLUMNS = (
    "tags.`scale`", "tags.`condition`", "tags.`intermediate_task`", "tags.`task`", "tags.`seed`",
    "metrics.`zero_shot.avg`", "metrics.`best_score`", "metrics.`best_learning_rate`",
)
UI = "http://127.0.0.1:5000"  # `make mlflow-ui`, and the README's tunnel to a cluster head's server


def ui_base(tracking_uri: str) -> str:
    """The UI serving this tracking store: the server itself, or `make mlflow-ui` for a local store."""
    parts = urlsplit(without_password(tracking_uri))
    if parts.scheme in ("http", "https"):
        host = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    return UI


def runs_table_url(tracking_uri: str, experiment_id: str) -> str:
    return (f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")


def view_state() -> str:
    return json.dumps({"selectedColumns": list(COLUMNS)})


def publish_runs_view(tracker) -> str:
    """Writes the study's view into its experiment (idempotent) and returns the address of its runs table."""
    experiment_id = tracker.experiment_id
    tracker.client.set_experiment_tag(experiment_id, VIEW_TAG, view_state())
    return runs_table_url(tracker.uri, experiment_id)


def study_urls(tracking_uri: str, server: str = UI, prefix: str = "ray_xt/") -> list[tuple[str, str]]:
    """(experiment name, runs-table address on ``server``) of every ray_xt study in a tracking store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = []
    for experiment in client.search_experiments(filter_string=f"name LIKE '{prefix}%'"):
        client.set_experiment_tag(experiment.experiment_id, VIEW_TAG, view_state())
        found.append((experiment.name, runs_table_url(server, experiment.experiment_id)))
    return sorted(found)


def main(argv: list[str] | None = None) -> None:
    """`make mlflow-ui`: python -m ray_xt.mlflow_view TRACKING_URI [UI]: prints each study's runs-table address."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    uri, server = args[0], (args[1] if len(args) > 1 else UI)
    urls = study_urls(uri, server)
    print("MLflow UI: each study's runs table (open it once; MLflow then remembers 'Model training'):" if urls
          else f"MLflow UI: {server} (no ray_xt study in {without_password(uri)} yet)")
    for name, url in urls:
        print(f"  {name}: {url}")


if __name__ == "__main__":
    main()
