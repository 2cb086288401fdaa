"""What Tune, Train and Optuna print in a study's processes (stage drivers, trial actors): warnings and errors,
not their progress tables; ``RAY_XT_TUNE_OUTPUT=1`` keeps everything."""

from __future__ import annotations

import logging
import os

TUNE_OUTPUT_ENV = "RAY_XT_TUNE_OUTPUT"  # "1": keep Tune's, Train's and Optuna's console output


RACE_LOGGERS = ("ray.tune.execution.experiment_state", "ray.train._internal.syncer")


class SearcherStateRace(logging.Filter):
    """Drops Tune's report of one known race: its background upload of the experiment folder lists the searcher's
    temporary state file (``.<uuid>-tmp-searcher-state-*.pkl``), which Tune renames before the copy reaches it.
    The printed traceback (FileNotFoundError) looked like a failed study; the next upload copies the renamed file,
    so nothing is lost. Any other failure of the upload still prints."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return not ("FileNotFoundError" in text and "-tmp-searcher-state" in text)


RESULTS_LOGGER = "ray.tune.analysis.experiment_analysis"


class TrialsWithoutResults(logging.Filter):
    """Drops Tune's warning about trials without result files after a restore: a trial killed (with its driver)
    before it wrote any result is restarted from its last complete checkpoint, and the stage's record counts it
    (``sweep.trials_without_results``); it is no error. Any other failure to read results still prints."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith("Failed to fetch metrics for"):
            return True
        failures = [line for line in text.splitlines()[1:] if line.strip()]
        return not all("FileNotFoundError('Could not fetch metrics for" in line for line in failures)


def quiet_tune_console(driver: bool = False) -> None:
    """Keep Tune's, Train's and Optuna's console output out of a study's log, in the process that calls it (a
    stage driver, a trial actor). ray-xt prints one line per stage; every trial's results are in MLflow and in
    the sweep's experiment folder. Without this a one-seed demo's log was two-thirds Tune: under its new output
    engine Tune prints a configuration table and a results path per experiment even at ``verbose=0``, and its
    loggers report every checkpoint and state snapshot at INFO. Warnings and errors still print.
    ``RAY_XT_TUNE_OUTPUT=1`` (in the environment Ray's workers start from) keeps all of it."""
    if os.environ.get(TUNE_OUTPUT_ENV) == "1":
        return
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # read per Tuner.fit; Tune's legacy reporter honours verbose=0
    for name in ("ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # on the two loggers that report the race (a logger's filters see every record made there, whichever handlers
    # print it; a renamed module only brings the message back) and on Ray's console handler
    for target in [logging.getLogger(name) for name in RACE_LOGGERS] + logging.getLogger("ray").handlers:
        if not any(isinstance(f, SearcherStateRace) for f in target.filters):
            target.addFilter(SearcherStateRace())
    results = logging.getLogger(RESULTS_LOGGER)
    if not any(isinstance(f, TrialsWithoutResults) for f in results.filters):
        results.addFilter(TrialsWithoutResults())
    if driver:  # the stage driver builds the Optuna searcher; a trial actor need not import optuna
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" per sweep
