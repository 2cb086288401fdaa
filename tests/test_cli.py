"""The `ray-xt` command line: help everywhere, plan schedules nothing, run end to end (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, tiny_study
from ray_xt.cli import app


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["run", "--help"], ["report", "--help"],
                                  ["micro", "--help"], ["micro", "build", "--help"], ["data", "--help"],
                                  ["data", "prepare", "--help"]])
def test_help_everywhere(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_plan_prints_stages_without_ray(ray_never_started):
    result = CliRunner().invoke(app, ["plan", str(ROOT / "experiments" / "demo.yaml")])
    assert result.exit_code == 0, result.output
    # 2 scales x 3 seeds x (6 intermediates + udpos from 7 sources + tatoeba and bucc2018 from 7 sources);
    # 2 trials per sweep (6 intermediate + 7 target sweeps per scale and seed)
    assert "162 stages, 156 trials" in result.output
    assert "target udpos <- mnli[translate-train] micro-m seed2" in result.output
    assert "retrieval tatoeba <- ccg[en] micro-s seed0" in result.output
    assert "retrieval bucc2018 <- pretrained micro-m seed1" in result.output
    assert "| micro-m | 81 | 78 |" in result.output  # the cost table: stages and trials per scale


def test_one_seed_of_a_study_is_a_subset_of_its_stages():
    from ray_xt.cli import only_seeds
    from ray_xt.config import load_study
    from ray_xt.stages import expand

    demo = load_study(ROOT / "experiments" / "demo.yaml")
    first = expand(only_seeds(demo, "0", "demo.yaml"))
    assert len(first) == 54 and {s.key for s in first} < {s.key for s in expand(demo)}  # `make demo` skips them later


@pytest.mark.parametrize("seeds, complaint", [("5", "seed(s) [5] are not in the study's seeds [0, 1, 2]"),
                                              ("zero", "must be comma-separated integers")])
def test_run_refuses_seeds_outside_the_study_before_ray(seeds, complaint, ray_never_started):
    result = CliRunner().invoke(app, ["run", str(ROOT / "experiments" / "demo.yaml"), "--seeds", seeds])
    assert result.exit_code == 2
    assert f"--seeds {seeds}" in result.output and complaint in result.output


@pytest.mark.slow
@pytest.mark.timeout(1300)
def test_run_cli_end_to_end(tmp_path, mlflow_auth_server):
    """`ray-xt run` in a fresh process: intermediate (en, translate-train) -> target, report in MLflow - a team's
    MLflow server with basic auth, the credentials in the tracking URI, and a --set override."""
    import urllib.parse

    from conftest import AUTH_PASSWORD, AUTH_USER

    study = tiny_study(tmp_path, tmp_path / "cache", intermediate={"tasks": ["mnli"], "conditions": ["en", "translate-train"]})
    study["tracking"]["uri"] = f"http://{AUTH_USER}:{AUTH_PASSWORD}@{urllib.parse.urlsplit(mlflow_auth_server).netloc}"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ray-xt"), "run", str(path), "--set", "trial.epochs=1"], capture_output=True,
        text=True, timeout=1200, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    # the password is never printed, nor written into the study's records and checkpoints' configs
    assert AUTH_PASSWORD not in out + proc.stderr
    written = [f for f in (tmp_path / "results").rglob("*.json") if f.is_file()]
    assert written and not [f for f in written if AUTH_PASSWORD in f.read_text(errors="replace")]
    records = [json.loads(f.read_text()) for f in (tmp_path / "results" / "tiny" / "stages").glob("*.json")]
    assert {r["trial_spec"]["epochs"] for r in records if "trial_spec" in r} == {1.0}  # --set reached every trial
    assert "stage 5/5" in out and "pawsx on micro-s" in out
    assert "mnli:translate-train" in out and "avg (zero-shot)" in out
    # the console is ray-xt's: no Tune banner per sweep, no INFO line per checkpoint (RAY_XT_TUNE_OUTPUT=1 keeps them)
    assert "Configuration for experiment" not in out + proc.stderr
    assert "Checkpoint successfully created" not in out + proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(study["tracking"]["uri"])
    exp = client.get_experiment_by_name("ray_xt/tiny")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    summary = [r for r in runs if r.data.tags.get("stage") == "summary"]
    assert len(summary) == 1
    artifacts = {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert {"comparison.md", "comparison.png", "scores.csv"} <= artifacts
    stages = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("stage") != "summary"]
    assert len(stages) == 5
    assert len(runs) == 1 + 5 + 5 * 2  # summary + stage parents + 2 trials per stage
    assert not [r.info.run_id for r in runs if AUTH_PASSWORD in json.dumps({**r.data.params, **r.data.tags})]


def test_micro_build_rejects_unknown_scale_option():
    result = CliRunner().invoke(app, ["micro", "build", str(ROOT / "experiments" / "demo.yaml"), "--scales", "micro-q"])
    assert result.exit_code == 2
    assert "scales" in result.output and "micro-q" in result.output and "micro-s" in result.output


def test_refusals_leave_every_command_through_one_boundary():
    """Commands raise; ray_xt.cli_errors prints the message and exits 2. A bug is not a refusal: it propagates."""
    import re
    from pathlib import Path

    import typer
    from typer.testing import CliRunner

    from ray_xt.cli_errors import UsageError, command
    from ray_xt.config import ConfigError

    probe = typer.Typer()

    @command(probe, "refuse")
    def refuse(kind: str) -> None:
        raise {"usage": UsageError("--x 3: not a size; valid: 1, 2"), "config": ConfigError("trial.epochs: < 0"),
               "bug": KeyError("oops")}[kind]

    @command(probe, "fine")
    def fine() -> None:
        typer.echo("ok")

    runner = CliRunner()
    for kind, message in (("usage", "--x 3: not a size; valid: 1, 2"), ("config", "trial.epochs: < 0")):
        result = runner.invoke(probe, ["refuse", kind])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert isinstance(runner.invoke(probe, ["refuse", "bug"]).exception, KeyError)
    root = Path(__file__).resolve().parents[1] / "ray_xt"
    for module in ("cli.py", "cluster_cli.py"):  # every command behind the guard; none prints and exits on its own
        text = (root / module).read_text()
        assert not re.search(r"fg=\"red\"|Exit\(2\)|@\w+\.command\(", text), module
