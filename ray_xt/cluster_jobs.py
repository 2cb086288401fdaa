"""A study's driver as a Ray job on the cluster's head: submitted, followed, listed and stopped there.

The CLUSTER= make targets run these on the head node (`ray submit` of ``cluster_entry.py``, `ray exec` of
``ray-xt cluster ...``), where Ray's job server listens on 127.0.0.1:8265. The driver runs under Ray's job
supervisor on the head, not in the SSH session: a dropped connection ends only the log-following, and
``make cluster-logs`` re-attaches. Everything goes through Ray's public ``JobSubmissionClient``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# the head's job server (the dashboard, on the head's localhost); RAY_XT_JOB_SERVER for a head started elsewhere
JOB_SERVER = os.environ.get("RAY_XT_JOB_SERVER", "http://127.0.0.1:8265")
STUDY_KEY = "ray_xt.study"  # job metadata: which study a job drives
ACTIVE = ("PENDING", "RUNNING")
PROGRESS_MARK = "[ray-xt] progress:"
REPLAYED_LINES = 30  # shown again when re-attaching to a running job


class ClusterJobError(RuntimeError):
    """Something the user must act on: the message says what."""


@dataclass(frozen=True)
class StudyJob:
    submission_id: str
    study: str
    status: str
    started: float | None  # seconds since the epoch

    @property
    def since(self) -> str:
        if not self.started:
            return "not started"
        return datetime.fromtimestamp(self.started, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def job_client(address: str = JOB_SERVER):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except ConnectionError as err:
        raise ClusterJobError(f"no Ray job server answers at {address} ({err}); is the cluster up? "
                              "make cluster-up CLUSTER=...") from None
    except Exception as err:  # noqa: BLE001 - Ray raises RuntimeError/ValueError/HTTP errors: one clear line
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:300]
        raise ClusterJobError(f"the Ray job server at {address} did not accept this client ({reason}); on the "
                              "cluster's head with RAY_AUTH_MODE=token and the cluster's ~/.ray/auth_token?") from None


def study_jobs(client) -> list[StudyJob]:
    """ray_xt's jobs on this cluster, newest first."""
    jobs = [StudyJob(j.submission_id, (j.metadata or {})[STUDY_KEY], str(j.status.value if hasattr(j.status, "value")
                     else j.status), (j.start_time or 0) / 1000 or None)
            for j in client.list_jobs() if STUDY_KEY in (j.metadata or {}) and j.submission_id]
    return sorted(jobs, key=lambda j: j.started or 0, reverse=True)


def running(client, study: str | None = None) -> list[StudyJob]:
    return [j for j in study_jobs(client) if j.status in ACTIVE and (study is None or j.study == study)]


def entrypoint(checkout: Path, study_file: Path, run_args: list[str]) -> str:
    """The job's shell command: this checkout's ``ray-xt run`` attached to the cluster, from the checkout (where
    the study's relative paths mean what they mean on a laptop)."""
    ray_xt = Path(sys.executable).parent / "ray-xt"
    return (f"cd {shlex.quote(str(checkout))} && exec {shlex.quote(str(ray_xt))} run {shlex.quote(str(study_file))} "
            f"--address auto " + " ".join(shlex.quote(a) for a in run_args)).rstrip()


def submit(client, study: str, command: str, now: datetime | None = None) -> str:
    """Submits the study's driver; refuses while the same study already runs on this cluster."""
    active = running(client, study)
    if active:
        job = active[0]
        raise ClusterJobError(
            f"study {study!r} already runs on this cluster as job {job.submission_id} (since {job.since}); "
            "follow it with `make cluster-logs CLUSTER=...`, or stop it with `make cluster-stop CLUSTER=...` "
            "before submitting it again")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return client.submit_job(entrypoint=command, submission_id=f"ray-xt-{study}-{stamp}", metadata={STUDY_KEY: study})


def choose(client, which: str | None) -> StudyJob:
    """The job named (a submission id or a study name), else the newest ray_xt job."""
    jobs = study_jobs(client)
    mine = [j for j in jobs if which in (None, j.submission_id, j.study)]
    if not mine:
        known = ", ".join(f"{j.submission_id} ({j.study}, {j.status})" for j in jobs[:5]) or "none"
        raise ClusterJobError(f"no ray_xt job {'named ' + repr(which) + ' ' if which else ''}on this cluster "
                              f"(ray_xt jobs: {known})")
    return mine[0]


def last_progress(logs: str) -> str | None:
    lines = [line for line in logs.splitlines() if PROGRESS_MARK in line]
    return lines[-1].strip() if lines else None


def status_lines(client) -> list[str]:
    jobs = study_jobs(client)
    if not jobs:
        return ["no ray_xt study has been submitted to this cluster"]
    lines = []
    for job in jobs:
        lines.append(f"{job.submission_id}  study {job.study}  {job.status}  since {job.since}")
        if job.status in ACTIVE or job is jobs[0]:
            progress = last_progress(client.get_job_logs(job.submission_id))
            lines.append(f"    {progress or '(no stage finished yet)'}")
    return lines


def follow(client, job: StudyJob, out=None) -> str:
    """Prints the job's log as it grows until the job ends (the last ``REPLAYED_LINES`` first when re-attaching
    to a job with a long log) and returns its final status. Ending this ends only the following."""
    out = out or sys.stdout
    history = client.get_job_logs(job.submission_id).splitlines(keepends=True)
    skip = len(history)
    if skip > REPLAYED_LINES:
        out.write(f"[ray-xt] {job.submission_id}: {skip - REPLAYED_LINES} earlier log lines not shown "
                  "(`ray-xt cluster logs --all` on the head shows them)\n")
        history = history[-REPLAYED_LINES:]
    out.writelines(history)
    out.flush()

    async def tail() -> None:
        seen, partial = 0, ""
        async for chunk in client.tail_job_logs(job.submission_id):
            partial += chunk
            *lines, partial = partial.split("\n")
            for line in lines:
                seen += 1
                if seen > skip:
                    out.write(line + "\n")
            out.flush()
        if partial and seen >= skip:
            out.write(partial + "\n")

    try:
        asyncio.run(tail())
    except RuntimeError:
        pass  # the job server closed the stream; the status below says how the job ended
    for _ in range(30):  # the stream can close a moment before the status turns final
        status = str(client.get_job_status(job.submission_id).value)
        if status not in ACTIVE:
            return status
        time.sleep(1)
    return status


def detached_message(job: StudyJob) -> str:
    return (f"[ray-xt] stopped following job {job.submission_id}: the study keeps running on the cluster. "
            "Re-attach with `make cluster-logs CLUSTER=...`, see all studies with `make cluster-status CLUSTER=...`.")
