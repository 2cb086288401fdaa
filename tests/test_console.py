"""A study's console: Tune's banners and INFO lines stay out of it unless RAY_XT_TUNE_OUTPUT=1."""

import logging

import pytest

from ray_xt.tune_console import TUNE_OUTPUT_ENV, quiet_tune_console

pytestmark = pytest.mark.integration
LOGGERS = ("ray.tune", "ray.train", "optuna")


@pytest.fixture
def logger_levels():
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _report(config):
    from ray import tune

    tune.report({"score": 1.0})


@pytest.mark.parametrize("keep_output", [False, True])
def test_a_sweep_driver_prints_no_tune_banner_unless_asked(keep_output, tmp_path, capfd, monkeypatch, logger_levels,
                                                            ray_local):
    from ray import tune

    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # Tune's default; monkeypatch restores it after the test
    if keep_output:
        monkeypatch.setenv(TUNE_OUTPUT_ENV, "1")
    else:
        monkeypatch.delenv(TUNE_OUTPUT_ENV, raising=False)
    before = {name: logging.getLogger(name).level for name in LOGGERS}
    quiet_tune_console(driver=True)
    after = {name: logging.getLogger(name).level for name in LOGGERS}
    assert after == (before if keep_output else dict.fromkeys(LOGGERS, logging.WARNING))
    tune.Tuner(_report, tune_config=tune.TuneConfig(num_samples=1),
               run_config=tune.RunConfig(name=f"quiet-{keep_output}", storage_path=str(tmp_path), verbose=0)).fit()
    printed = capfd.readouterr()
    banner = "Configuration for experiment" in printed.out + printed.err
    assert banner == keep_output


def _upload_error(source: str) -> BaseException:
    """The error pyarrow's copy (what Tune's background upload runs) raises for a file that vanished."""
    import pyarrow.fs

    try:
        pyarrow.fs.copy_files(source, source + ".copy")
    except BaseException as err:  # noqa: BLE001 - the test wants whatever pyarrow raises
        return err
    raise AssertionError("copying a missing file did not fail")


def test_tunes_race_with_its_own_searcher_state_file_is_silent_and_other_upload_failures_still_print(
        tmp_path, monkeypatch, logger_levels):
    """Tune's syncer logs a failed background upload with the traceback in the message (warning) or as exc_info
    (error); through Ray's own console handler, the vanished temporary searcher-state file is dropped, a real
    failure of the same upload is not."""
    import io
    import traceback

    import ray  # noqa: F401 - installs Ray's console handler on the "ray" logger

    monkeypatch.delenv(TUNE_OUTPUT_ENV, raising=False)
    quiet_tune_console()
    console = io.StringIO()  # Ray's handler keeps the stream it found at import (under pytest, an old capture)
    handlers = logging.getLogger("ray").handlers
    streams = [h.setStream(console) for h in handlers if isinstance(h, logging.StreamHandler)]
    assert streams, "Ray's console handler is not on the 'ray' logger"
    # a handler added after ray_xt quietened the console (as a logging setup in a worker could): still quiet
    later = logging.StreamHandler(io.StringIO())
    logging.getLogger("ray").addHandler(later)
    race = _upload_error(str(tmp_path / ".5f0e-tmp-searcher-state-2026-12-05_12-00-00.pkl"))
    real = _upload_error(str(tmp_path / "experiment_state-2026-12-05_12-00-00.json"))
    syncer, state = logging.getLogger("ray.train._internal.syncer"), logging.getLogger("ray.tune.execution.experiment_state")
    for err in (race, real):
        text = "".join(traceback.format_exception(err))
        syncer.warning(f"Last sync command failed with the following error:\n{text}")
        state.error("Saving experiment state to storage failed with exception: ", exc_info=err)
    for handler, stream in zip([h for h in handlers if isinstance(h, logging.StreamHandler)], streams):
        handler.setStream(stream)
    logging.getLogger("ray").removeHandler(later)
    printed = console.getvalue()
    assert "tmp-searcher-state" not in printed + later.stream.getvalue()
    assert "experiment_state-2026-12-05_12-00-00.json" in later.stream.getvalue()
    assert printed.count("experiment_state-2026-12-05_12-00-00.json") >= 2, printed


ENDED_IN_A_FINALISER = r"""
import os, signal, sys
from ray._raylet import raise_sys_exit_with_custom_error_message  # what Ray's worker raises on SIGTERM
if sys.argv[1] == "quiet":
    from ray_xt.trial import quiet_termination
    quiet_termination()
signal.signal(signal.SIGTERM, lambda *_: raise_sys_exit_with_custom_error_message(
    "The process receives a SIGTERM.", exit_code=1))  # Ray's worker's handler (ray._private.worker.main_loop)

class Held:
    def __del__(self):
        if sys.argv[2] == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):
                pass  # the handler runs here, inside the finaliser
        else:
            raise ValueError("a real bug in a finaliser")

held = Held()
del held
import time
time.sleep(2)  # a worker goes on with its loop after a finaliser
print("lived on")
"""


@pytest.mark.parametrize("quiet", [False, True])
def test_a_trial_actor_ended_by_ray_inside_a_finaliser_ends_without_a_traceback(quiet):
    """What a reused trial actor printed at the end of `make demo` (Ray's SIGTERM landing in a weakref callback):
    reproduced with Ray's own handler. Without quiet_termination Python prints it and the process lives on; with it,
    nothing is printed and the process ends as the signal meant. A real error in a finaliser still prints."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", ENDED_IN_A_FINALISER, "quiet" if quiet else "plain", "sigterm"],
                         capture_output=True, text=True, timeout=120)
    if quiet:
        assert run.returncode == 1 and "lived on" not in run.stdout, (run.returncode, run.stdout)
        assert "SystemExit" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    else:
        assert "Exception ignored" in run.stderr and "SystemExit: 1" in run.stderr and "lived on" in run.stdout
    bug = subprocess.run([sys.executable, "-c", ENDED_IN_A_FINALISER, "quiet" if quiet else "plain", "bug"],
                         capture_output=True, text=True, timeout=120)
    assert "ValueError: a real bug in a finaliser" in bug.stderr and "lived on" in bug.stdout


def test_only_rays_sigterm_exit_counts_as_one():
    from ray._raylet import raise_sys_exit_with_custom_error_message

    from ray_xt.ray_internals import is_ray_sigterm_exit

    try:
        raise_sys_exit_with_custom_error_message("The process receives a SIGTERM.", exit_code=1)
    except SystemExit as err:
        assert is_ray_sigterm_exit(err)
    assert not is_ray_sigterm_exit(SystemExit(1)) and not is_ray_sigterm_exit(ValueError()) and not is_ray_sigterm_exit(None)


def test_a_restored_sweeps_trials_without_results_are_not_reported_as_errors(caplog):
    import logging

    from ray_xt.tune_console import RESULTS_LOGGER, quiet_tune_console

    quiet_tune_console()
    logger = logging.getLogger(RESULTS_LOGGER)
    missing = ("Failed to fetch metrics for 1 trial(s):\n- run_trial_0c1f2a3b: FileNotFoundError('Could not fetch "
               "metrics for run_trial_0c1f2a3b: both result.json and progress.csv were not found at /x')")
    other = "Failed to fetch metrics for 1 trial(s):\n- run_trial_1: PermissionError('denied')"
    with caplog.at_level(logging.WARNING, logger=RESULTS_LOGGER):
        logger.warning(missing)
        logger.warning(other)
    assert [r.getMessage() for r in caplog.records] == [other]
