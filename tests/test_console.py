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
