"""MLflow naming, nesting and idempotent run keys.

Layout: one MLflow experiment per study; a parent run per stage; a nested
child run per Tune trial; one study-summary run for the comparison.  Every run
carries a ``ray_xt.key`` tag; runs are looked up by it before being created,
so re-running, resuming or retrying never duplicates a run.

All MLflow calls happen in the driver (a Tune callback), never in trial
processes: one writer per SQLite store, and Train V2's RunConfig restrictions
(ray#64179) do not apply to Tune callbacks.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from ray import tune

from ray_xt.tracking_uri import store_problem, tracking_problem, without_password

KEY_TAG = "ray_xt.key"
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
SECRET_PATTERNS = ("*token*", "*secret*", "*key*", "*password*", "*credential*")


class TrackingUnavailable(ConnectionError):
    pass


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast: a study does not start training when its MLflow server cannot be reached, or turns its
    credentials away.

    (Chosen over buffering: records are never silently lost, and the message comes before any cluster
    resource is used. A server lost mid-study makes that stage fail after MLflow's own retries; finished
    stages are kept and a re-run continues.)
    """
    problem = tracking_problem(uri) or store_problem(uri)
    if problem:
        raise TrackingUnavailable(problem + ". Nothing was started.")
    if not uri.startswith(("http://", "https://")):
        return  # a file store: nothing to reach
    import urllib.error

    shown = without_password(uri)
    try:
        _get(uri, "/health", timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise TrackingUnavailable(
            f"MLflow tracking server {shown} is unreachable ({err}); start it (`make mlflow-ui`, or "
            "the cluster head's server through an SSH tunnel) or use a sqlite:/// store. Nothing was started.") from None
    try:  # /health answers anyone; an API call shows whether the server (e.g. --app-name basic-auth) lets us in
        _get(uri, "/api/2.0/mlflow/experiments/search?max_results=1", timeout)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            user = _credentials(uri)[0]
            who = f"the credentials of user {user!r}" if user else "requests without credentials"
            raise TrackingUnavailable(
                f"MLflow tracking server {shown} refuses {who} (HTTP {err.code}); give user:password in the URI "
                "(http://user:password@host:5000) or set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD. "
                "Nothing was started.") from None
        raise TrackingUnavailable(f"MLflow tracking server {shown} answered its API with HTTP {err.code}; "
                                  "is this an MLflow server? Nothing was started.") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise TrackingUnavailable(f"MLflow tracking server {shown} failed its API call ({err}). "
                                  "Nothing was started.") from None


def _credentials(uri: str) -> tuple[str | None, str]:
    """The user and password MLflow's client sends: those in the URI (requests reads them), else MLflow's env vars."""
    import os
    import urllib.parse

    parts = urllib.parse.urlsplit(uri)
    if parts.username is not None:
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    return os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD", "")


def _get(uri: str, path: str, timeout: float) -> None:
    """GET ``path`` on the server with the client's basic-auth credentials; HTTP errors raise HTTPError."""
    import base64
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    user, password = _credentials(uri)
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else (parts.hostname or "")
    parts = parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host)
    url = urllib.parse.urlunsplit(parts).rstrip("/") + path
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout):
        pass


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Never log credentials: values of secret-looking keys are replaced."""
    return {
        k: ("<redacted>" if any(fnmatch.fnmatch(k.lower(), p) for p in SECRET_PATTERNS) else v)
        for k, v in params.items()
    }


class Tracker:
    """Get-or-create access to a study's MLflow experiment (plain values only, so it pickles)."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        self.experiment = experiment
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    def __getstate__(self):
        return {"uri": self.uri, "experiment": self.experiment, "_client": None, "_experiment_id": None}

    @property
    def client(self):
        if self._client is None:
            import os

            from mlflow.tracking import MlflowClient

            # MLflow prints each finished run's URL - with the password when the tracking URI carries one
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = exp.experiment_id if exp else self.client.create_experiment(
                # model training, so MLflow 3's UI opens on the runs table instead of its (empty) GenAI overview
                self.experiment, tags={"mlflow.experimentKind": "custom_model_development"})
        return self._experiment_id

    def find_run(self, key: str):
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=2)
        return runs[0] if runs else None

    def run_for(self, key: str, name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
        """The run with this key: found if it exists, created otherwise."""
        existing = self.find_run(key)
        if existing is not None:
            return existing.info.run_id
        all_tags = {**{k: str(v) for k, v in tags.items()}, KEY_TAG: key}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        return self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id

    def summary_run(self, study: str) -> str:
        """The study's one summary run (progress while it runs, then the report): found by key, never duplicated."""
        return self.run_for(f"study/{study}", f"{study}-summary", {"stage": "summary", "study": study})

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        run = self.client.get_run(run_id)
        new = {k: v for k, v in redact(params).items() if k not in run.data.params}  # params are write-once
        if new:
            self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in new.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_datasets(self, run_id: str, inputs: list[tuple[str, dict, str]]) -> None:
        """MLflow dataset inputs (the runs table's Dataset column): (name, manifest entry, context) each, the entry's
        digest and source as ``ray_xt.prepare`` recorded them."""
        import json

        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
        from mlflow.entities import Dataset, DatasetInput, InputTag

        logged = []
        for name, info, context in inputs:
            source = info["source"]
            if source.get("kind") in ("hub", "hub_mirror"):
                source_type, text = "hugging_face", HuggingFaceDatasetSource(
                    path=source.get("path", source["dataset"]), config_name=source.get("config"),
                    split=source.get("split"), revision=source.get("revision")).to_json()
            else:
                source_type, text = "local", json.dumps({"uri": source.get("file") or source.get("root", ""),
                                                         **{k: v for k, v in source.items() if k != "file"}})
            dataset = Dataset(name=name, digest=info["digest"], source_type=source_type, source=text,
                              profile=json.dumps({"num_rows": info["rows"]}))
            logged.append(DatasetInput(dataset, [InputTag("mlflow.data.context", context)]))
        if not logged:
            return
        from mlflow.exceptions import MlflowException

        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, datasets=logged)
                return
            except MlflowException:
                # concurrent stages logging one data set race to create its row (a unique key per experiment,
                # name and digest); the row is there now and the next attempt links it
                if attempt == 2:
                    raise

    def log_artifacts(self, run_id: str, directory: str, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, directory, artifact_path)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


def _error_text(trial) -> str:
    """The failed trial's exception (Tune's error file holds the traceback; its last line names the reason)."""
    from pathlib import Path

    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [x for x in Path(path).read_text(errors="replace").splitlines() if x.strip()]
        reason = next((x for x in reversed(lines) if "Error" in x or "Exception" in x), lines[-1] if lines else "")
        return reason.strip()
    return str(path or "trial failed")


class MLflowTrialCallback(tune.Callback):
    """Mirrors Tune trials into nested MLflow runs under a stage's parent run."""

    def __init__(self, tracker: Tracker, stage_key: str, parent_run_id: str, tags: dict[str, str], params: dict):
        self.tracker = tracker
        self.stage_key = stage_key
        self.parent_run_id = parent_run_id
        self.tags = tags
        self.params = params
        self._runs: dict[str, str] = {}

    def _run(self, trial) -> str:
        if trial.trial_id not in self._runs:
            key = f"{self.stage_key}/{trial.trial_id}"
            run_id = self.tracker.run_for(
                key, f"{self.tags.get('stage', 'trial')}-{trial.trial_id}", {**self.tags, "trial_id": trial.trial_id},
                parent_run_id=self.parent_run_id,
            )
            self.tracker.log_params(run_id, {**self.params, **trial.config})
            self._runs[trial.trial_id] = run_id
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        step = int(result.get("step", result.get("training_iteration", 0)))
        logged = {k: v for k, v in result.items()
                  if k in ("score", "train_loss", "mlm_loss", "mlm_steps", "epoch", "examples_per_second")
                  or k.startswith("score.")}
        self.tracker.log_metrics(self._run(trial), logged, step)

    def on_trial_complete(self, iteration, trials, trial, **info):
        run_id = self._run(trial)
        last = trial.last_result or {}
        if "score" in last:
            self.tracker.log_metrics(run_id, {"final_score": last["score"]}, int(last.get("step", 0)))
        self.tracker.finish(run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self._run(trial)
        self.tracker.client.set_tag(run_id, "error", _error_text(trial)[-5000:])
        self.tracker.finish(run_id, "FAILED")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_runs"] = {}
        return state
