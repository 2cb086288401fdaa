"""The loop's sessions under Ray: a one-process trial reporting to Ray Tune, one rank of a Ray Train worker group;
and the divergence marker a retried trial finds in its storage folder."""

from __future__ import annotations

import json
from pathlib import Path

from ray_xt.loop import OneProcessSession, TrialDiverged


def divergence_marker() -> Path | None:
    """A file in the trial's storage folder: a retried trial (any node) finds it and does not train again."""
    from ray import tune

    try:
        return Path(tune.get_context().get_storage().trial_fs_path) / "diverged.json"
    except Exception:  # noqa: BLE001 - outside Tune (no storage context): no marker
        return None


def stop_if_diverged(marker: Path | None) -> None:
    """Tune retries failed trials and Train restarts worker groups; a diverged trial would diverge again."""
    if marker is not None and marker.exists():
        raise TrialDiverged(json.loads(marker.read_text())["reason"] + " (not retried: deterministic)")


def final_report(metrics: dict, final: bool) -> dict:
    """A trial's last report says so (Tune's ``done``): Tune then ends the trial from inside ``tune.report``
    at once. A function that simply returns costs every trial ~1 s more, Tune's wait for an error that never
    comes (``_ERROR_FETCH_TIMEOUT`` in ray.train._internal.session; docs/benchmarks.md)."""
    return {**metrics, "done": True} if final else metrics


class TuneSession(OneProcessSession):
    """A one-process trial in its Tune actor: checkpoints and metrics go straight to Ray Tune, which stops the
    trial from inside ``tune.report``."""

    def __init__(self, marker: Path | None):
        self.marker = marker

    def checkpoint(self):
        from ray import tune

        return tune.get_checkpoint()

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        from ray import tune

        tune.report(final_report(metrics, final), checkpoint=tune.Checkpoint.from_directory(directory))


class TrainWorkerSession:
    """One rank of a Ray Train worker group: Train merges every rank's checkpoint folder into one."""

    def __init__(self, marker: Path | None):
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.marker = marker

    def checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        import ray.train

        # Every rank reports (Train's barrier); rank 0's metrics are the ones kept. The folder name must be the
        # same on every rank for Train to merge the ranks' shards into one checkpoint: its default is a
        # timestamp taken by each rank.
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory), checkpoint_dir_name=name)

    def all_finite(self, loss) -> bool:
        """Agreed by every rank: one rank stopping alone would leave the others waiting in a collective."""
        import torch
        import torch.distributed as dist

        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=loss.device)  # NCCL: on the GPU
        dist.all_reduce(bad)
        return bad.item() == 0

    def stop_requested(self) -> bool:
        return False  # Train stops its workers from inside ray.train.report
