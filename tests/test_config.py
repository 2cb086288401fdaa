"""Config validation: every bad input names its field and what is valid, before Ray starts."""

from pathlib import Path

import pytest
import yaml

from ray_xt.config import ConfigError, load_study, parse_study

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "name": "t",
    "scales": ["micro-s"],
    "intermediate": {"tasks": ["mnli"], "conditions": ["en", "translate-train"]},
    "target": {"tasks": ["pawsx"]},
}


def with_change(path: str, value):
    """GOOD with one nested key set (path 'a.b.c'); value None deletes nothing, it sets None."""
    import copy

    data = copy.deepcopy(GOOD)
    node = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return data


BAD = [
    # (change, expected fragments of the message)
    (("trial.epoch", 3), ["trial", "unknown key(s) ['epoch']", "epochs"]),
    (("taget", {}), ["unknown key(s) ['taget']", "target"]),
    (("trial.batch_size", "big"), ["trial.batch_size", "'big'"]),
    (("trial.epochs", -1), ["trial.epochs", "greater than 0"]),
    (("scales", ["micro-xxl"]), ["scales", "micro-xxl", "micro-s"]),
    (("target.tasks", ["squadx"]), ["target.tasks", "squadx", "pawsx"]),
    (("intermediate.tasks", ["pawsx"]), ["intermediate.tasks", "pawsx", "mnli"]),
    (("intermediate.conditions", ["fr"]), ["intermediate.conditions", "translate-train"]),
    (("target.languages", ["en", "de"]), ["target.languages", "de", "qca"]),
    (("target.languages", ["qca"]), ["target.languages", "must include 'en'"]),
    (("micro.languages", ["en", "klingon"]), ["micro.languages", "klingon", "qso"]),
    (("micro.languages", ["qca"]), ["micro.languages", "must include 'en'"]),
    (("search.learning_rate", {"low": 1e-3, "high": 1e-5}), ["search.learning_rate", "low (0.001) must be <= high"]),
    (("search.learning_rate", {"low": 0, "high": 1e-5}), ["search.learning_rate.low", "greater than 0"]),
    (("search.initial_learning_rate", 0.5), ["search", "initial_learning_rate", "outside"]),
    (("search.num_samples", 0), ["search.num_samples"]),
    (("trial.zero_stage", 4), ["trial.zero_stage", "less than or equal to 3"]),
    (("trial.bf16", "yes"), ["trial.bf16"]),
    (("data.source", "xtreme_dir"), ["data", "root: required"]),
    (("data", {"source": "xtreme_dir", "root": "/nonexistent/xtreme"}), ["data", "/nonexistent/xtreme", "does not exist"]),
    (("data.source", "s3"), ["data.source", "'micro'", "'s3'"]),
    (("scales", ["xlmr-base"]), ["scales", "xlmr-base", "micro"]),
    (("name", "bad name!"), ["name", "pattern"]),
]


@pytest.mark.parametrize("change,fragments", BAD, ids=[c[0] for c, _ in BAD])
def test_bad_input_names_the_field(change, fragments):
    with pytest.raises(ConfigError) as err:
        parse_study(with_change(*change), "study.yaml")
    message = str(err.value)
    assert message.startswith("study.yaml: invalid study configuration")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_good_config_parses_and_separates_trial_from_search():
    cfg = parse_study(GOOD)
    assert cfg.search.learning_rate.low < cfg.search.learning_rate.high
    assert "learning_rate" not in cfg.trial.model_fields  # fixed settings and search ranges live apart
    assert cfg.languages_for("pawsx")[0] == "en"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: study file not found"):
        load_study(tmp_path / "nope.yaml")


def test_invalid_yaml_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_study(path)


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_study(path)


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path):
    cfg = load_study(path)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# Launch:"), "each experiment opens with the command that runs it"
    assert cfg.name == yaml.safe_load(path.read_text())["name"]


def test_cli_reports_config_error_before_ray(tmp_path, ray_never_started):
    """`ray-xt run` on a bad file exits 2 with the message and never starts Ray."""
    from typer.testing import CliRunner

    from ray_xt.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_change("trial.max_seq_lenght", 64)))
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "max_seq_lenght" in result.output and "max_seq_length" in result.output


def test_missing_data_files_are_listed_before_ray(tmp_path, ray_never_started):
    """An xtreme_dir study whose folder lacks files fails with every missing path, before Ray starts."""
    from typer.testing import CliRunner

    from ray_xt.cli import app

    root = tmp_path / "xtreme"
    (root / "download" / "pawsx").mkdir(parents=True)
    (root / "download" / "pawsx" / "train-en.tsv").write_text("a\tb\t1\n")
    study = {"name": "x", "data": {"source": "xtreme_dir", "root": str(root)}, "scales": ["xlmr-base"],
             "target": {"tasks": ["pawsx"], "languages": ["en", "de"]}}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(study))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "missing data files" in result.output
    assert "dev-de.tsv" in result.output and "dev-en.tsv" in result.output
    assert "train-en.tsv" not in result.output


def test_unreachable_mlflow_server_fails_fast_before_ray(tmp_path, ray_never_started):
    """Policy: no training without a reachable tracking server (records are never silently lost)."""
    import socket

    from typer.testing import CliRunner

    from ray_xt.cli import app

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(with_change("tracking.uri", f"http://127.0.0.1:{port}")))
    result = CliRunner().invoke(app, ["run", str(good)])
    assert result.exit_code == 2
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in result.output
    assert "Nothing was started" in result.output


def test_reachable_mlflow_server_passes_the_check(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    from ray_xt.tracking import check_tracking_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                               str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}", "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                check_tracking_server(f"http://127.0.0.1:{port}", timeout=2)
                break
            except ConnectionError:
                assert time.time() < deadline, "mlflow server did not come up"
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_set_overrides_change_the_study_as_the_file_would_and_are_recorded_with_its_stages(tmp_path):
    """`--set trial.epochs=3 --set search.num_samples=8`: the same study as a file saying so (same stage keys), and the
    resolved config every stage record and checkpoint keeps carries the values."""
    from ray_xt.config import load_study
    from ray_xt.stages import expand
    from ray_xt.study import recordable

    base = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text())
    edited = {**base, "trial": {**base["trial"], "epochs": 3}, "search": {**base["search"], "num_samples": 8},
              "task_overrides": {"udpos": {"epochs": 5}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(edited))
    overridden = load_study(tmp_path / "base.yaml", ["trial.epochs=3", "search.num_samples=8",
                                                     "task_overrides.udpos.epochs=5"])
    assert overridden == load_study(tmp_path / "edited.yaml")
    assert [s.key for s in expand(overridden)] == [s.key for s in expand(load_study(tmp_path / "edited.yaml"))]
    assert [s.key for s in expand(overridden)] != [s.key for s in expand(load_study(tmp_path / "base.yaml"))]
    assert overridden.trial_for("udpos").epochs == 5 and overridden.trial_for("pawsx").epochs == 3
    recorded = recordable(overridden)
    assert recorded["trial"]["epochs"] == 3 and recorded["search"]["num_samples"] == 8


def test_config_explain_describes_every_setting_and_names_an_unknown_one():
    """Every setting of the study file has a description (a new field without one fails here), and
    `ray-xt config explain FIELD` prints a field or a group."""
    from typer.testing import CliRunner

    from ray_xt.cli import app
    from ray_xt.config import explain

    lines = explain()
    assert all(" — " in line for line in lines), [line for line in lines if " — " not in line]
    names = {line.split()[0] for line in lines}
    assert {"trial.epochs", "search.learning_rate.low", "task_overrides.<key>.epochs", "scale_overrides.<key>.gpus",
            "tracking.uri"} <= names
    assert "task_overrides.<key>.cpus" not in names  # placement is per scale
    result = CliRunner().invoke(app, ["config", "explain", "trial.epochs"])
    assert result.exit_code == 0 and result.output.startswith("trial.epochs") and "passes over the training data" in result.output
    result = CliRunner().invoke(app, ["config", "explain", "trial"])
    assert result.exit_code == 0 and "trial.group_by_length" in result.output and "search." not in result.output
    result = CliRunner().invoke(app, ["config", "explain", "trail"])
    assert result.exit_code == 2 and "no study setting 'trail'" in result.output and "trial" in result.output


def test_a_trials_settings_come_from_one_resolved_object():
    """Every trial: setting reaches the trial by its own name through StudyConfig.resolved_trial (or is used where
    features are made); nothing the loop reads is left unresolved, on every shipped study's scales and tasks."""
    from dataclasses import fields

    from ray_xt.config import FEATURE_FIELDS, TrialConfig, load_study
    from ray_xt.loop import FROM_SETTINGS, TrialSpec

    spec_fields = {f.name for f in fields(TrialSpec)}
    for name in TrialConfig.model_fields:
        assert name in FROM_SETTINGS or name == "gpus" or name in FEATURE_FIELDS, f"trial.{name} reaches no trial"
    assert set(FROM_SETTINGS) <= spec_fields and "gpus_per_worker" in spec_fields
    for shipped in sorted((ROOT / "experiments").glob("*.yaml")):
        cfg = load_study(shipped)
        for scale in cfg.scales:
            for task in cfg.intermediate.tasks + cfg.target.tasks:
                resolved = cfg.resolved_trial(task, scale)
                spec = TrialSpec.of(resolved, model_path="m", tokenizer_path="m", tasks=(), seed=0, stage_key="k",
                                    git_revision="g")
                assert None not in [getattr(spec, name) for name in FROM_SETTINGS], (shipped.name, scale, task)
                assert spec.epochs == cfg.trial_for(task).epochs  # task_overrides apply
                assert (spec.batch_size, spec.grad_accum, spec.workers) == (
                    cfg.batch_size_for(task, scale), cfg.grad_accum_for(task, scale), cfg.workers_for(scale))
                assert (spec.cpus, spec.gpus_per_worker) == cfg.resources_for(scale)
                assert spec.placement == "STRICT_PACK"  # a worker group's ranks on one node unless a study says so


def test_the_checker_sees_every_task_override_field():
    """TaskOverride is built from TrialConfig at import; the class the type checker reads lists the same fields."""
    import ast

    from ray_xt.config import PLACEMENT_FIELDS, TaskOverride, TrialConfig

    tree = ast.parse((ROOT / "ray_xt" / "config" / "sections.py").read_text())
    stub = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "TaskOverride")
    seen = [node.target.id for node in stub.body if isinstance(node, ast.AnnAssign)]
    assert seen == list(TaskOverride.model_fields) == [f for f in TrialConfig.model_fields if f not in PLACEMENT_FIELDS]
