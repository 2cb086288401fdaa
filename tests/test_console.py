"""A study's console: Tune's banners and INFO lines stay out of it unless RAY_XT_TUNE_OUTPUT=1."""

import logging

import pytest

from ray_xt.sweep import TUNE_OUTPUT_ENV, quiet_tune_console

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
    race = _upload_error(str(tmp_path / ".5f0e-tmp-searcher-state-2026-12-05_12-00-00.pkl"))
    real = _upload_error(str(tmp_path / "experiment_state-2026-12-05_12-00-00.json"))
    syncer, state = logging.getLogger("ray.train._internal.syncer"), logging.getLogger("ray.tune.execution.experiment_state")
    for err in (race, real):
        text = "".join(traceback.format_exception(err))
        syncer.warning(f"Last sync command failed with the following error:\n{text}")
        state.error("Saving experiment state to storage failed with exception: ", exc_info=err)
    for handler, stream in zip([h for h in handlers if isinstance(h, logging.StreamHandler)], streams):
        handler.setStream(stream)
    printed = console.getvalue()
    assert "tmp-searcher-state" not in printed
    assert printed.count("experiment_state-2026-12-05_12-00-00.json") >= 2, printed
