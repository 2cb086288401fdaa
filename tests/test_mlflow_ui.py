"""The address ray_xt prints opens the study's runs table with its columns, in a real browser on a real MLflow UI.

MLflow 3.17 opens an experiment on the GenAI overview (its workflow switch defaults to GenAI, in the browser);
the printed address carries the workflow and a shared view of ray_xt's columns (ray_xt/mlflow_view.py). Headless
Chromium renders both addresses and the test reads the page: if a later MLflow ignores either parameter, it fails.
Needs Debian's chromium (.ci/run installs it): skipped without it, failed when RAY_XT_REQUIRE_BROWSER_TEST=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ray_xt.mlflow_view import publish_runs_view, runs_table_url
from ray_xt.tracking import Tracker

pytestmark = pytest.mark.slow


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("RAY_XT_REQUIRE_BROWSER_TEST") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def rendered(browser: str, url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (20 s of virtual time: the runs table loads asynchronously)."""
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1600,900", "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def mlflow_ui(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = Tracker(store, "ray_xt/ui_check")
    run = tracker.run_for("stage/x", "target-xnli-mnli-en", {"stage": "target", "scale": "micro-s", "condition": "en",
                                                             "intermediate_task": "mnli", "task": "xnli", "seed": "0"})
    tracker.log_metrics(run, {"zero_shot.avg": 0.42, "best_score": 0.5, "best_learning_rate": 1e-5}, 0)
    tracker.finish(run)
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store,
                               "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None and time.time() < deadline, "mlflow ui did not come up"
            time.sleep(1)
    yield tracker, f"http://127.0.0.1:{port}"
    os.killpg(server.pid, 15)
    server.wait(30)


@pytest.mark.timeout(600)
def test_the_printed_address_opens_the_runs_table_with_the_studys_columns(mlflow_ui, tmp_path):
    browser = chromium()
    tracker, ui = mlflow_ui
    publish_runs_view(tracker)
    ours = rendered(browser, runs_table_url(ui, tracker.experiment_id), tmp_path / "profile-a")
    assert "target-xnli-mnli-en" in ours and "Run Name" in ours  # the runs table, with the study's run
    for column in ("zero_shot.avg", ">intermediate_task<", ">condition<", ">scale<"):
        assert column in ours, column
    assert ">Overview<" not in ours
    # what a plain experiment address shows: the GenAI overview, no runs table (why the address says more)
    plain = rendered(browser, f"{ui}/#/experiments/{tracker.experiment_id}", tmp_path / "profile-b")
    assert ">Overview<" in plain and "target-xnli-mnli-en" not in plain
