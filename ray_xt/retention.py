"""What a sweep keeps of its checkpoints: a retry's needs while it runs, the best model once it has finished.

A checkpoint is the DeepSpeed state (``ds/``: weights, fp32 master weights and Adam's moments, ~14 bytes per
parameter under bf16) beside the model alone (``model/``: 2 bytes per parameter). Only a trial's latest
checkpoint is ever resumed from, so:

- while a sweep runs, every trial keeps its latest checkpoint whole and its best-scored one (Tune's and Train's
  ``num_to_keep=1``: the best, and the latest, which they always keep); ``OptimizerStateRetention`` deletes the
  ``ds/`` of a trial's earlier checkpoints as soon as a newer one is reported, and of its latest when it ends;
- once the stage's record is written, ``prune_finished_sweep`` leaves only the best trial's best checkpoint, as
  the model alone: what the next stage and the scoring read.

Sizes per scale are in ``ray_xt/budgets.py`` and ``docs/memory.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from ray.tune import Callback

from ray_xt.storage import join, remove, subfolders

OPTIMIZER_STATE = "ds"  # the DeepSpeed state inside a checkpoint folder (ray_xt.loop._write_checkpoint)
CHECKPOINT_PREFIX = "checkpoint_"


class OptimizerStateRetention(Callback):
    """A Tune callback on the sweep's driver: a trial's new checkpoint makes its previous one's ``ds/`` garbage.

    One-process trials report Tune checkpoints (``on_checkpoint``); worker-group trials report Ray Train's
    checkpoint path as the ``checkpoint_path`` metric (``on_trial_result``)."""

    def __init__(self, locate: Callable[[str], str] = str):
        self.locate = locate  # a path inside the storage's filesystem -> a location ray_xt.storage reads
        self.latest: dict[str, str] = {}  # trial id -> its latest checkpoint's location

    def _reported(self, trial_id: str, path: str) -> None:
        location = self.locate(path)
        previous = self.latest.get(trial_id)
        if previous is not None and previous != location:
            remove(join(previous, OPTIMIZER_STATE))  # gone already if Tune deleted the whole folder
        self.latest[trial_id] = location

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self._reported(trial.trial_id, checkpoint.path)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        path = result.get("checkpoint_path")
        if isinstance(path, str):
            self._reported(trial.trial_id, path)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        """A finished trial (or one ASHA stopped) never resumes: its latest checkpoint needs no optimizer state.
        An errored trial may be retried, so it keeps it."""
        latest = self.latest.pop(trial.trial_id, None)
        if latest is not None:
            remove(join(latest, OPTIMIZER_STATE))

    def get_state(self) -> dict:  # a restored sweep (driver died) continues pruning where it left off
        return {"latest": dict(self.latest)}

    def set_state(self, state: dict) -> None:
        self.latest = dict(state.get("latest", {}))


def prune_finished_sweep(experiment_dir: str, best_model_dir: str) -> int:
    """Leaves a finished sweep's best checkpoint (its model, state and records; not its ``ds/``) and deletes every
    other checkpoint folder of its trials; the number deleted. Run after the stage's record is written: the
    sweep is then memoised and never restored."""
    best = _parent(best_model_dir)
    deleted = 0
    for folder in _checkpoint_folders(experiment_dir):
        if folder.rstrip("/") == best:
            remove(join(folder, OPTIMIZER_STATE))
        else:
            remove(folder)
            deleted += 1
    return deleted


def _checkpoint_folders(experiment_dir: str) -> list[str]:
    """Checkpoint folders of a sweep's trials: ``<trial>/checkpoint_*`` (Tune) and ``<trial>/train/checkpoint_*``
    (a worker group's Ray Train run)."""
    found = []
    for trial in subfolders(experiment_dir):
        for inner in subfolders(trial):
            if _name(inner).startswith(CHECKPOINT_PREFIX):
                found.append(inner)
            elif _name(inner) == "train":
                found += [c for c in subfolders(inner) if _name(c).startswith(CHECKPOINT_PREFIX)]
    return found


def _name(location: str) -> str:
    """The last part of a folder or URI location."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def _parent(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[0]
