"""The signal handling itself, with real signals sent to this process: the first asks to stop (or interrupts at
once outside the scheduling loop), the second ends the process; the paragraph and the command that continues."""

import os
import signal
import time

import pytest

from ray_xt.study.stopping import StopRequest, StudyInterrupted, continue_command


def _deliver(signum):
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in the main thread between bytecodes


def test_in_the_scheduling_loop_the_first_signal_asks_and_the_second_ends():
    stop = StopRequest()
    stop.in_loop = True
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # an earlier test's Tune may own them
    with stop.installed():
        _deliver(signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(SystemExit) as ended:
            _deliver(signal.SIGINT)
    assert ended.value.code == 128 + signal.SIGINT
    assert {s: signal.getsignal(s) for s in before} == before  # the previous handlers back


def test_outside_the_loop_the_first_signal_interrupts_with_where_the_study_stands():
    stop = StopRequest()
    stop.progress = (5, 54, 0)
    with stop.installed(), pytest.raises(StudyInterrupted) as interrupted:
        _deliver(signal.SIGINT)
    err = interrupted.value
    assert err.exit_code == 130
    text = err.paragraph(continue_command(["/x/.venv/bin/ray-xt", "run", "experiments/demo.yaml", "--seeds", "0"]))
    assert text == ("[ray-xt] stopped by SIGINT: 5 of 54 stages finished (0 in this run), each record whole. Run the "
                    "same command to continue (finished stages are skipped): ray-xt run experiments/demo.yaml --seeds 0")
    cut = StudyInterrupted(signal.SIGTERM, 7, 54, 2, ["target pawsx <- pretrained micro-s seed0"])
    assert cut.exit_code == 143 and "Interrupted: target pawsx <- pretrained micro-s seed0 (their sweeps continue" \
        in cut.paragraph("ray-xt run s.yaml")
