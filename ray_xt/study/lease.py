"""One driver per study: a lease object on the study's storage (a shared POSIX folder or object storage), renewed
by a heartbeat and expiring when its holder stops renewing it.

A driver takes the lease before it schedules anything and gives it back when it ends. A second driver of the same
study (another seed set is the same study) finds a live lease and is refused with who holds it and since when; a
lease whose holder died (SIGKILL, a lost node) stops being renewed and expires after ``LEASE_SECONDS``, or is taken
over at once with ``--takeover``. Taking is write-then-verify: the lease is written under a fresh token, read back
after ``SETTLE_SECONDS`` (object stores have no exclusive create), and held only if the token read back is one's
own; every renewal verifies it again, so a driver that lost its lease learns it at the next heartbeat.
`ray-xt plan` and `ray-xt report` never take it."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ray_xt import storage

LEASE_FILE = "driver.lease.json"
LEASE_SECONDS = 120.0  # a holder silent this long is taken for dead
LEASE_ENV = "RAY_XT_LEASE_SECONDS"  # another length (tests use a few seconds)
SETTLE_SECONDS = 1.0  # between writing a lease and reading it back: a concurrent writer's object lands meanwhile


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid: int
    job_id: str  # the Ray job the driver runs as ("" when run from a shell)
    since: float
    renewed: float
    lease_seconds: float

    def expired(self, now: float) -> bool:
        return now - self.renewed > self.lease_seconds

    def describe(self, now: float) -> str:
        job = f", Ray job {self.job_id}" if self.job_id else ""
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return (f"host {self.host}, pid {self.pid}{job}, since {started} (renewed {now - self.renewed:.0f} s ago; "
                f"expires {self.lease_seconds:.0f} s after its last renewal)")


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV, LEASE_SECONDS))


def ray_job_id() -> str:
    """The Ray job this process runs as (its submission id, from the job's config Ray passes in), else ""."""
    try:
        config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
    except ValueError:
        return ""
    return str((config.get("metadata") or {}).get("job_submission_id", ""))


class StudyHeld(RuntimeError):
    """Another live driver holds the study's lease."""


class StudyLease:
    """The lease on one study's storage folder (``<storage>/<study>``)."""

    def __init__(self, study_location: str, study: str, lease_seconds: float = LEASE_SECONDS,
                 settle_seconds: float = SETTLE_SECONDS, clock: Callable[[], float] = time.time,
                 job_id: str = ""):
        self.location = storage.join(study_location, LEASE_FILE)
        self.study, self.lease_seconds, self.settle_seconds, self.clock = study, lease_seconds, settle_seconds, clock
        self.job_id = job_id
        self.mine: Holder | None = None
        self.lost = threading.Event()  # set when a renewal finds another holder's token
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def holder(self) -> Holder | None:
        text = storage.read_text(self.location)
        if not text:
            return None
        try:
            return Holder(**json.loads(text))
        except (ValueError, TypeError):  # a lease written half (a local file being replaced) counts as none
            return None

    def acquire(self, takeover: bool = False) -> Holder:
        """Takes the lease, or raises StudyHeld naming the live holder and how to take over."""
        now = self.clock()
        current = self.holder()
        if current is not None and not current.expired(now) and not takeover:
            raise StudyHeld(self._held_message(current, now))
        mine = Holder(uuid.uuid4().hex, socket.gethostname(), os.getpid(), self.job_id, now, now, self.lease_seconds)
        self._write(mine)
        time.sleep(self.settle_seconds)
        won = self.holder()
        if won is None or won.token != mine.token:
            raise StudyHeld(self._held_message(won, self.clock()) if won else
                            f"study {self.study}: its lease {self.location} could not be written; nothing was run")
        self.mine = mine
        self._heartbeat = threading.Thread(target=self._renew_until_stopped, name="study-lease", daemon=True)
        self._heartbeat.start()
        return mine

    def release(self) -> None:
        """Stops renewing and removes the lease if it is still one's own."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        current = self.holder()
        if self.mine is not None and current is not None and current.token == self.mine.token:
            storage.remove(self.location)
        self.mine = None

    def renew(self) -> bool:
        """One heartbeat: rewrites the lease with a new renewal time; False (and ``lost`` set) if another driver
        holds it now."""
        if self.mine is None:
            return False
        current = self.holder()
        if current is None or current.token != self.mine.token:
            self.lost.set()
            return False
        self.mine = Holder(**{**asdict(self.mine), "renewed": self.clock()})
        self._write(self.mine)
        return True

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            try:
                if not self.renew():
                    return
            except OSError:  # storage unreachable for a moment: the next heartbeat tries again
                continue

    def _write(self, holder: Holder) -> None:
        storage.write_text(self.location, json.dumps(asdict(holder), indent=1) + "\n", unique=True)

    def _held_message(self, holder: Holder, now: float) -> str:
        return (f"study {self.study} is being run by another driver ({holder.describe(now)}); lease: {self.location}. "
                f"Nothing was run. Wait for it to finish, stop it (`ray job stop`, or a signal to that process), or, "
                f"if it is dead, run again after the lease expires or with --takeover.")

    def __enter__(self) -> StudyLease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
