"""Stopping a study when told: SIGINT (a terminal's Ctrl-C, `kill -INT`, `timeout -s INT`) and SIGTERM (`ray job
stop`, Slurm, systemd, Kubernetes) ask the driver to stop; a second signal ends it at once.

On the first signal the driver schedules nothing more, cancels its running stages (each stage's Tune sweep gets a
KeyboardInterrupt, stops its trials and keeps its experiment folder, from which a re-run resumes), waits for them
at most ``STOP_GRACE_SECONDS``, and ends with ``StudyInterrupted``: the CLI prints one paragraph (what finished,
what was interrupted, the command that continues) and exits 128 + the signal (130, 143). Records stay atomic: a
stage's record is written whole after its stage, or not at all."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_GRACE_SECONDS = 30.0  # running stages get this long to stop after the first signal
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StudyInterrupted(Exception):
    """The study stopped on a signal; ``paragraph`` says where it stands."""

    def __init__(self, signum: int, finished: int, total: int, this_run: int, interrupted: list[str]):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.finished, self.total, self.this_run, self.interrupted = (
            signum, finished, total, this_run, interrupted)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def paragraph(self, command: str) -> str:
        cut = (f" Interrupted: {'; '.join(self.interrupted)} (their sweeps continue from their last checkpoints)."
               if self.interrupted else "")
        return (f"[ray-xt] stopped by {signal.Signals(self.signum).name}: {self.finished} of {self.total} stages "
                f"finished ({self.this_run} in this run), each record whole.{cut} Run the same command to continue "
                f"(finished stages are skipped): {command}")


class StopRequest:
    """The first signal asks the driver to stop (``requested``; outside the scheduling loop it interrupts at once);
    the second ends the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.event = threading.Event()
        self.in_loop = False  # the scheduling loop checks ``requested`` every second and stops its stages itself
        self.progress: tuple[int, int, int] = (0, 0, 0)  # finished, total, this run: for an early interruption

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame) -> None:
        if self.event.is_set():
            sys.stderr.write(f"\n[ray-xt] second signal ({signal.Signals(signum).name}): ending now\n")
            raise SystemExit(128 + signum)
        self.signum = signum
        self.event.set()
        sys.stderr.write(f"\n[ray-xt] {signal.Signals(signum).name}: stopping the study (running stages get up to "
                         f"{STOP_GRACE_SECONDS:.0f} s; a second signal ends it at once)\n")
        if not self.in_loop:
            raise StudyInterrupted(signum, *self.progress, [])

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """The handlers in place for the block (main thread only), the previous ones back after it."""
        previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def continue_command(argv: list[str] | None = None) -> str:
    """The command that continues this run: the same arguments, run by the same command name."""
    args = list(sys.argv if argv is None else argv)
    return " ".join(["ray-xt", *(shlex.quote(a) for a in args[1:])])
