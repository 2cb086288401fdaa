"""Stopping, restarting and sharing a study, as a user and a job scheduler do it to a running `ray-xt run`:
SIGINT to the process and to its group, SIGTERM, the exit codes and the paragraph, the resume; two drivers of one
study started together; a holder killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import tiny_study

RAY_XT = str(Path(sys.executable).parent / "ray-xt")


def _study_file(tmp_path, cache) -> Path:
    study = tiny_study(tmp_path, cache, intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train-each"]},
                       target={"tasks": ["pawsx"]}, search={"num_samples": 1, "max_concurrent": 1},
                       trial={"epochs": 20}, parallel_stages=2)  # sweeps long enough to be caught running
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _start(path: Path, log_name: str, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    log = path.parent / log_name
    proc = subprocess.Popen([RAY_XT, "run", str(path)], cwd=path.parent, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
    return proc, log


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and text not in log.read_text() and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None and text in log.read_text(), log.read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("how, code", [("process SIGINT", 130), ("group SIGINT", 130), ("process SIGTERM", 143)])
def test_a_signal_stops_the_study_gracefully_and_a_rerun_continues(tmp_path, micro_cache, how, code):
    path = _study_file(tmp_path, micro_cache)
    proc, log = _start(path, "first.log")
    _wait_for(proc, log, ": started")
    tune = tmp_path / "results" / "tiny" / "tune"
    deadline = time.time() + 600
    while time.time() < deadline and not list(tune.glob("*/*/checkpoint_*")) and proc.poll() is None:
        time.sleep(0.5)  # a trial has reported: the stop interrupts a sweep with something to resume
    assert proc.poll() is None and list(tune.glob("*/*/checkpoint_*")), log.read_text()[-3000:]
    signum = signal.SIGTERM if "SIGTERM" in how else signal.SIGINT
    sent = time.time()
    (os.killpg if how.startswith("group") else os.kill)(proc.pid, signum)
    proc.wait(timeout=120)
    stopped_in = time.time() - sent
    out = log.read_text()
    assert proc.returncode == code, out[-3000:]
    assert stopped_in < 60, stopped_in  # the documented bound: 30 s for the running stages, then the paragraph
    assert f"[ray-xt] stopped by {signal.Signals(signum).name}: " in out
    assert f"Run the same command to continue (finished stages are skipped): ray-xt run {path}" in out
    assert "Traceback" not in out and "*** SIGTERM received" not in out and "PC: @" not in out, out[-3000:]
    assert not (tmp_path / "results" / "tiny" / "driver.lease.json").exists()  # the lease given back

    again = subprocess.run([RAY_XT, "run", str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "done before (skipped)" in again.stdout
    assert "Could not fetch metrics" not in again.stdout + again.stderr  # Tune's leftovers are not errors
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "tiny" / "stages").glob("*.json")]
    assert len(records) == 7
    if "Interrupted: " in out:  # a sweep was cut: the re-run says it resumes it, and its record says so
        assert "interrupted sweep(s) from their last checkpoints" in again.stdout
        assert any(r["sweep"].get("resumed") for r in records)


@pytest.mark.slow
def test_two_drivers_of_one_study_one_runs_the_other_is_refused(tmp_path, micro_cache):
    path = _study_file(tmp_path, micro_cache)
    first, first_log = _start(path, "first.log")
    _wait_for(first, first_log, "stages:")  # past its lease, scheduling
    second = subprocess.run([RAY_XT, "run", str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert "study tiny is being run by another driver (host " in second.stderr and f"pid {first.pid}" in second.stderr
    assert "--takeover" in second.stderr
    assert first.wait(timeout=1200) == 0, first_log.read_text()[-3000:]
    started = [line for line in first_log.read_text().splitlines() if ": started" in line]
    assert len(started) == 7  # every stage once, by the one driver


HOLD = """
import sys, time
from ray_xt.study.lease import StudyLease
lease = StudyLease(sys.argv[1], "tiny", lease_seconds=float(sys.argv[2]), settle_seconds=0)
lease.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_holder_killed_with_sigkill_is_waited_out_then_replaced(tmp_path):
    """No Ray involved: the lease alone, held by a process that dies without giving it back."""
    from ray_xt.study.lease import StudyHeld, StudyLease

    where = str(tmp_path / "results" / "tiny")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, where, "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with pytest.raises(StudyHeld, match=f"pid {holder.pid}"):
        StudyLease(where, "tiny", lease_seconds=3, settle_seconds=0).acquire()
    time.sleep(3.5)  # no heartbeat since it died: expired
    after = StudyLease(where, "tiny", lease_seconds=3, settle_seconds=0)
    after.acquire()
    after.release()


def test_run_is_refused_before_ray_starts_while_a_live_driver_holds_the_study(tmp_path):
    path = _study_file(tmp_path, tmp_path / "cache")  # never built: the refusal comes first
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "results" / "tiny"), "120"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = subprocess.run([RAY_XT, "run", str(path)], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=300)
        assert refused.returncode == 2 and f"pid {holder.pid}" in refused.stderr
        assert "inputs ready" not in refused.stdout and not (tmp_path / "cache").exists()  # nothing started
    finally:
        holder.kill()
        holder.wait()
