"""The progress line a re-attached user sees, and its ETA: the plan's estimate at this run's measured pace."""

from ray_xt.progress import StudyProgress, duration, measured_device_hours


def test_eta_is_the_remaining_plan_at_the_measured_pace():
    progress = StudyProgress(total=5, done_before=1, estimate={"a": 1.0, "b": 1.0, "c": 2.0, "d": 0.0},
                             device="GPU", started=1000.0)
    assert progress.eta_seconds(now=1100.0) is None  # nothing measured yet
    assert "ETA after the first training stage (plan: 4 GPU-h to run)" in progress.line(now=1100.0)
    progress.stage_done("a", device_hours=0.5)
    # 1 planned GPU-h took 3600 s of wall time: the 3 planned hours left take 3 x 3600 s
    assert progress.eta_seconds(now=1000.0 + 3600) == 3 * 3600
    line = progress.line(now=1000.0 + 3600)
    assert line.startswith("[ray-xt] progress: 2/5 stages done (1 this run), 0.5 GPU-h spent this run")
    assert "~3 GPU-h of plan left" in line and "(in 3h 00m)" in line
    metrics = progress.metrics(now=1000.0 + 3600)
    assert metrics == {"progress.stages_done": 2.0, "progress.stages_total": 5.0, "progress.device_hours_spent": 0.5,
                       "progress.device_hours_left_planned": 3.0, "progress.eta_hours": 3.0}
    for key in ("b", "c", "d"):
        progress.stage_done(key, device_hours=0.0)
    assert progress.done == 5 and progress.eta_seconds() == 0.0 and progress.line().endswith("finished")


def test_spent_device_hours_are_each_trials_time_times_its_devices():
    record = {"sweep": {"trials": [{"seconds": 1800.0}, {"seconds": 3600.0}, {"seconds": None}]}}
    assert measured_device_hours(record, devices_per_trial=4) == 6.0
    assert measured_device_hours({"sweep": {}}, 1) == 0.0


def test_durations_read_as_people_write_them():
    assert duration(59 * 60) == "59m" and duration(3 * 3600 + 5 * 60) == "3h 05m" and duration(50 * 3600) == "2d 2h"
