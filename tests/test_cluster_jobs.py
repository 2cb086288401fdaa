"""The study's job on a cluster head: its command and what `ray-xt cluster status` reads from its log.
(Submitting, following, refusing a second driver and re-attaching run for real in tests/test_real_cluster.py.)"""

import shlex
import sys
from pathlib import Path

from ray_xt.cluster_jobs import entrypoint, last_progress


def test_the_job_runs_this_checkouts_ray_xt_from_the_checkout_attached_to_the_cluster():
    command = entrypoint(Path("/home/u/ray-xt"), Path("/home/u/ray-xt/experiments/my study.yaml"),
                         ["--storage", "/mnt/shared/results", "--set", "trial.epochs=2"])
    words = shlex.split(command)
    assert words[:3] == ["cd", "/home/u/ray-xt", "&&"]
    assert words[3:6] == ["exec", str(Path(sys.executable).parent / "ray-xt"), "run"]
    assert words[6] == "/home/u/ray-xt/experiments/my study.yaml"  # quoted: one word
    assert words[7:] == ["--address", "auto", "--storage", "/mnt/shared/results", "--set", "trial.epochs=2"]


def test_status_shows_the_latest_progress_line():
    log = ("[ray-xt] 3 stages\n[ray-xt] progress: 0/3 stages done (0 this run), ...\nnoise\n"
           "(pid=1) [ray-xt] progress: 1/3 stages done (1 this run), 0.10 GPU-h spent\nmore noise\n")
    assert last_progress(log) == "(pid=1) [ray-xt] progress: 1/3 stages done (1 this run), 0.10 GPU-h spent"
    assert last_progress("nothing yet\n") is None
