"""A running study's progress: stages done, device-hours spent, and an ETA from the plan's cost model corrected by
what this run measured.

The plan estimates each stage's device-hours from the throughput table (``ray_xt.costs``). Once stages finish, the
wall time this run took per estimated device-hour is known (it folds in the real throughput, ASHA's early stops,
and how many trials the cluster runs at once), so the time left is the remaining stages' estimate at that rate.
The same numbers go to the study's MLflow summary run as ``progress.*`` metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ray_xt.records import StageRecord


def measured_device_hours(record: StageRecord, devices_per_trial: float) -> float:
    """Device-hours a finished stage's trials used: each trial's wall time (Tune's) times the devices it held."""
    seconds = sum(t.get("seconds") or 0.0 for t in record.get("sweep", {}).get("trials", []))
    return seconds / 3600 * devices_per_trial


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


@dataclass
class StudyProgress:
    """Progress of one run of a study (``estimate``: the plan's device-hours of every stage still to run)."""

    total: int
    done_before: int
    estimate: dict[str, float]
    device: str = "GPU"
    started: float = field(default_factory=time.time)
    spent: float = 0.0  # device-hours this run's finished stages measured
    finished: dict[str, float] = field(default_factory=dict)  # stage key -> its estimate, finished this run

    def stage_done(self, key: str, device_hours: float) -> None:
        self.finished[key] = self.estimate.get(key, 0.0)
        self.spent += device_hours

    @property
    def done(self) -> int:
        return self.done_before + len(self.finished)

    @property
    def remaining_estimate(self) -> float:
        return sum(h for k, h in self.estimate.items() if k not in self.finished)

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left: the remaining estimate at this run's measured wall time per estimated device-hour
        (None until a stage with a non-zero estimate has finished)."""
        if self.done >= self.total:
            return 0.0
        estimated_done = sum(self.finished.values())
        if estimated_done <= 0:
            return None
        return self.remaining_estimate * ((now or time.time()) - self.started) / estimated_done

    def line(self, now: float | None = None) -> str:
        now = now or time.time()
        eta = self.eta_seconds(now)
        if eta is None:
            when = f"ETA after the first training stage (plan: {self.remaining_estimate:.3g} {self.device}-h to run)"
        elif eta == 0:
            when = "finished"
        else:
            at = datetime.fromtimestamp(now + eta, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            when = f"~{self.remaining_estimate:.3g} {self.device}-h of plan left, ETA {at} (in {duration(eta)})"
        return (f"[ray-xt] progress: {self.done}/{self.total} stages done ({len(self.finished)} this run), "
                f"{self.spent:.3g} {self.device}-h spent this run, {when}")

    def metrics(self, now: float | None = None) -> dict[str, float]:
        eta = self.eta_seconds(now)
        found = {"progress.stages_done": float(self.done), "progress.stages_total": float(self.total),
                 "progress.device_hours_spent": self.spent, "progress.device_hours_left_planned": self.remaining_estimate}
        if eta is not None:
            found["progress.eta_hours"] = eta / 3600
        return found
