"""`ray-xt` command line: thin wrappers over config -> study -> report."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ray_xt.cli_errors import UsageError, command
from ray_xt.cluster_cli import cluster_app
from ray_xt.config import ConfigError, StudyConfig, load_study, only_seeds, parse_study
from ray_xt.records import StageRecord
from ray_xt.tracking_uri import without_password

app = typer.Typer(help="Distributed sweeps for multilingual intermediate-task transfer studies.", no_args_is_help=True)
micro_app = typer.Typer(help="The offline micro world: synthetic languages, tasks and micro XLM-R scales.",
                     no_args_is_help=True)
data_app = typer.Typer(help="The study's data: fetch, translate-in and check it before anything trains.",
                    no_args_is_help=True)
config_app = typer.Typer(help="The study file's settings.", no_args_is_help=True)
for name, sub_app in (("micro", micro_app), ("data", data_app), ("config", config_app), ("cluster", cluster_app)):
    app.add_typer(sub_app, name=name)

SET_HELP = ("override a study-file setting, FIELD=VALUE with FIELD dotted as in the file (trial.epochs=3, "
            "search.learning_rate.low=1e-5); repeatable; validated as the file is and recorded with the stages")


def _load(path: Path, overrides: list[str] | None = None) -> StudyConfig:
    return load_study(path, overrides or ())


def _with_storage(cfg: StudyConfig, storage: str) -> StudyConfig:
    """The study with ``--storage``, checked as storage: in the file would be."""
    from ray_xt.storage import storage_problem

    problem = storage_problem(storage)
    if problem:
        raise UsageError(f"--storage: {problem}")
    return cfg.model_copy(update={"storage": storage})


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be written under ``folder`` (None: it can), without creating it."""
    import os

    folder = Path(folder).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{existing} is a file, not a folder" if existing is not None else "no existing parent folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None


def _checks(cfg: StudyConfig, tracking_uri: str | None = None, room: bool = False) -> None:
    """What `ray-xt plan` and `ray-xt run` both check before Ray starts (the study file was checked on loading):
    the tracking store, and the folders the study writes; ``room`` (run): a local storage has room for the
    checkpoints of the stages still to run."""
    from ray_xt.budgets import pending_storage_problem
    from ray_xt.storage import is_uri
    from ray_xt.tracking import TrackingUnavailable, check_tracking_server

    problems = []
    if not is_uri(cfg.storage) and (why := _unwritable(Path(cfg.storage))):
        problems.append(f"storage: {cfg.storage}: {why}; give a folder you can write (or --storage)")
    elif room and not is_uri(cfg.storage) and (why := pending_storage_problem(cfg)):
        problems.append(why)
    if room:  # run; plan warns (a cluster's study file names folders only its nodes have)
        problems += _missing_data_folders(cfg)
    if cfg.data.source == "micro":
        from ray_xt.storage import default_cache_dir

        cache = cfg.micro.cache_dir or default_cache_dir()
        if why := _unwritable(Path(cache)):
            problems.append(f"micro.cache_dir: {cache}: {why}; give a folder you can write (or set RAY_XT_CACHE)")
    try:
        check_tracking_server(tracking_uri or cfg.tracking.uri)
    except TrackingUnavailable as err:
        problems.append(str(err))
    if problems:
        raise UsageError("\n".join(problems))


def _missing_data_folders(cfg: StudyConfig) -> list[str]:
    return [f"data.{name}: folder {folder} does not exist; give the folder that holds it, or leave data.{name} out"
            for name, folder in (("hub_mirror", cfg.data.hub_mirror), ("translations", cfg.data.translations))
            if folder is not None and not Path(folder).expanduser().is_dir()]


def _preflight(cfg: StudyConfig, tracking_uri: str | None = None) -> list | None:
    """Everything checkable without a cluster, so bad input fails before any resource is requested; the real
    data's manifest entries (None for the micro world, built after Ray starts)."""
    from ray_xt.prepare import prepare_data

    _checks(cfg, tracking_uri, room=True)
    if cfg.data.source != "micro":  # the micro world is built (and checked) after Ray starts
        return prepare_data(cfg, log=typer.echo)
    return None


def _init_ray(address: str | None) -> None:
    """Ray, or one clear line: an --address where no Ray listens fails in seconds, not after Ray's minute of
    retries."""
    import socket

    from ray_xt.local_ray import start_ray

    if address not in (None, "auto", "local") and not address.startswith(("ray://", "http://", "https://")):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or address, int(port or 6379)), timeout=5).close()
        except (OSError, ValueError) as err:
            raise UsageError(f"--address {address}: no Ray cluster answers there ({err}); give the head's address "
                             "as host:6379, or leave --address out to start a local Ray") from None
    try:
        start_ray(address, logging_level="WARNING", configure_logging=True)
    except ConnectionError as err:
        raise UsageError(f"--address {address}: {err}") from None


def _publish_report(runner, records: list[StageRecord]) -> None:
    """Comparison tables to the console, to <storage>/<study>/report/ and to the study's MLflow summary run."""
    from ray_xt.report import log_report, write_report
    from ray_xt.sequential import looks_of

    markdown, files = write_report(records, runner.parts.paths.report, looks_of(runner.cfg, records))
    typer.echo("\n" + markdown)
    if files:
        where = runner.parts.storage.publish(runner.parts.paths.report)
        run_id = log_report(runner.parts.tracker, runner.cfg.name, files, markdown)
        typer.echo(f"[ray-xt] report: {where} (MLflow run {run_id} in {without_password(runner.parts.tracker.uri)})")


@command(app)
def plan(
    experiment: Path = typer.Argument(..., help="study YAML (see experiments/)"),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the stages and trial counts of a study; schedules nothing. Runs the checks `run` runs before Ray
    starts, so a study `plan` accepts gets past them."""
    from ray_xt.costs import trial_count_line
    from ray_xt.stages import expand

    cfg = _load(experiment, overrides)
    _checks(cfg)
    stages = expand(cfg)
    typer.echo(trial_count_line(cfg, stages))
    for i, stage in enumerate(stages, 1):
        after = (f"  (after {stage.upstream.label})" if stage.upstream else "") + \
            (f"  (warm from {'; '.join(s.label for s in stage.informants)})" if stage.informants else "")
        typer.echo(f"  {i:3d}. {stage.label}{after}")
    counts: dict[str, int] = {}
    for s in stages:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    typer.echo("  by kind: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if cfg.data.source != "micro":
        from ray_xt.prepare import data_status

        typer.echo(f"\ndata ({cfg.data.source}, {cfg.data.data_root()}; `ray-xt data prepare` fetches and checks it):")
        for missing in _missing_data_folders(cfg):
            typer.secho(f"  warning: {missing} (`ray-xt run` refuses it here)", fg="yellow")
        from ray_xt.sources import export_status, mirror_dir
        from ray_xt.tasks.registry import TASKS

        for task, status in data_status(cfg).items():
            export = export_status(TASKS[task], mirror_dir(cfg.data.hub_mirror)) if task in TASKS else None
            if task == "udpos" and "missing" in status and cfg.data.source == "hub":
                export = ("XTREME's own files under the data root (download_data.sh's download/udpos/)"
                          + ("" if cfg.data.udpos_hub else ", or data.udpos_hub: true for the hub's build"))
            typer.echo(f"  {task}: {status}" + (f"; {export}" if export and status != "present" else ""))
        from ray_xt.prepare import data_needs
        from ray_xt.provenance import ExampleFiles, drawn_into, held_out_counts, held_out_ids

        files = ExampleFiles(cfg.data.data_root())
        for (task, split, lang), n in held_out_counts(files, data_needs(cfg), held_out_ids(cfg, files)).items():
            typer.echo(f"  held out of {task} {split} {lang}: {n:,} examples drawn into "
                       f"{', '.join(drawn_into(task, cfg))}'s evaluation (never trained or selected on)")

    from ray_xt.budgets import budget_lines
    from ray_xt.design import power_lines
    from ray_xt.storage import StudyStorage, is_uri, join

    study_storage = StudyStorage(cfg.storage, cfg.name)
    from ray_xt.design import pilot_records
    from ray_xt.study.layout import stage_store

    store = stage_store(cfg)
    try:
        pilot, pilot_name = pilot_records(cfg)
    except ConfigError as err:
        raise UsageError(f"power.pilot: {err}") from None
    for line in power_lines(cfg, [r for r in (store.get(s) for s in stages) if r is not None], pilot, pilot_name):
        typer.echo(line)
    for line in budget_lines(cfg, stages, None if is_uri(cfg.storage) else cfg.storage):
        typer.echo(line)

    from ray_xt.costs import ThroughputTable, asha_lines, estimate

    for line in asha_lines(cfg, stages):
        typer.secho(line, fg="yellow")

    table = ThroughputTable(join(study_storage.root, "throughput.json"))
    typer.echo("\nestimated cost (upper bound: every trial runs all its epochs; ASHA stops some early):")
    typer.echo("| scale | stages | trials | trial-hours | device-hours | throughput (examples/s/trial) |")
    typer.echo("| --- | --- | --- | --- | --- | --- |")
    costs = estimate(cfg, stages, table)
    for c in costs:
        typer.echo(f"| {c.scale} | {c.stages} | {c.trials} | {c.trial_hours:.2f} | {c.device_hours:.2f} {c.device}-h "
                   f"| {c.throughput:.0f} ({c.source}) |")
    from ray_xt.sequential import cost_lines

    for line in cost_lines(cfg, costs):  # a sequential study's expected and worst case
        typer.echo(line)


@command(app)
def run(
    experiment: Path = typer.Argument(..., help="study YAML (see experiments/)"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: start a local Ray instance)"),
    tracking_uri: str | None = typer.Option(None, help="MLflow tracking URI (overrides tracking.uri)"),
    storage: str | None = typer.Option(None, help="study storage (overrides storage:)"),
    seeds: str | None = typer.Option(None, help="run only these of the study's seeds, e.g. 0 (a first look); "
                                                   "a later run without it runs only the other seeds' stages"),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    takeover: bool = typer.Option(False, "--takeover", help="take the study's lease from a driver that is dead "
                                  "(without it, a run waits for the lease to expire: 2 minutes)"),
) -> None:
    """Run (or continue) a study; finished stages are skipped. One driver per study: a second one is refused.
    SIGINT or SIGTERM stops it (exit 130 / 143) with what finished and the command that continues."""
    from ray_xt.storage import StudyStorage
    from ray_xt.study import StudyDriver
    from ray_xt.study.lease import StudyHeld, StudyLease, lease_seconds, ray_job_id
    from ray_xt.study.stopping import StopRequest, StudyInterrupted, continue_command

    cfg = _load(experiment, overrides)
    if seeds:
        cfg = only_seeds(cfg, seeds, str(experiment))
    if storage:
        cfg = _with_storage(cfg, storage)
    prepared = _preflight(cfg, tracking_uri)
    lease = StudyLease(StudyStorage(cfg.storage, cfg.name).location, cfg.name, lease_seconds(), job_id=ray_job_id())
    try:
        lease.acquire(takeover)  # before any Ray process starts
    except StudyHeld as err:
        raise UsageError(str(err)) from None
    stop = StopRequest()
    with lease:
        _init_ray(address)
        if address is not None:
            import ray

            from ray_xt.study import node_local_storage

            problem = node_local_storage(cfg.storage, sum(n["Alive"] for n in ray.nodes()))
            if problem:
                raise UsageError(problem)
        runner = StudyDriver(cfg, tracking_uri=tracking_uri, log=lambda m: typer.echo(m), stop=stop)
        runner.prepared = prepared
        # after Ray's own start: its C++ signal handlers (a stack dump on SIGTERM) are replaced by the study's
        with stop.installed():
            try:  # a DataError found while tokenising (a question too long for max_seq_length) is a refusal
                records = runner.run()
            except StudyInterrupted as err:
                typer.echo(err.paragraph(continue_command()))
                raise typer.Exit(err.exit_code) from None
        _publish_report(runner, records)


@command(app)
def report(
    experiment: Path = typer.Argument(..., help="study YAML"),
    tracking_uri: str | None = typer.Option(None, help="MLflow tracking URI (overrides tracking.uri)"),
    storage: str | None = typer.Option(None, help="study storage (overrides storage:), as given to run"),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP + " (the same as given to run)"),
) -> None:
    """Rebuild the comparison report from the study's finished stages (runs nothing)."""
    from ray_xt.stages import expand
    from ray_xt.study import StudyDriver

    cfg = _load(experiment, overrides)
    if storage:
        cfg = _with_storage(cfg, storage)
    _checks(cfg, tracking_uri)
    runner = StudyDriver(cfg, tracking_uri=tracking_uri, log=lambda m: typer.echo(m))
    _publish_report(runner, [r for r in (runner.parts.store.get(s) for s in expand(cfg)) if r is not None])


@command(config_app, "explain")
def config_explain(field: str | None = typer.Argument(None, help="a setting or group, dotted (trial, trial.epochs); "
                                                                "default: every setting")) -> None:
    """Each study-file setting: its type, default and what it does (from the settings' own definitions)."""
    from ray_xt.config import explain

    typer.echo("\n".join(explain(field)))


@command(data_app, "prepare")
def data_prepare(
    experiment: Path = typer.Argument(..., help="study YAML (see experiments/)"),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Fetch (hub or mirror), translate-in (XTREME's translations) and check everything the study reads, without
    training; writes <data root>/manifest.json and prints what came from where."""
    from ray_xt.prepare import prepare_data
    from ray_xt.study import resolve_inputs

    cfg = _load(experiment, overrides)
    if cfg.data.source == "micro":  # the micro world's files and models are built, then checked
        resolved = resolve_inputs(cfg, use_ray=False)
        typer.echo(f"[ray-xt] micro world ready: {resolved.data_root} ({len(resolved.datasets)} data sets)")
    else:
        prepare_data(cfg, log=typer.echo)


@command(micro_app, "build")
def micro_build(
    experiment: Path = typer.Argument(Path("experiments/demo.yaml"), help="study YAML whose micro: section to build"),
    scales: str | None = typer.Option(None, help="comma-separated micro scales (default: the study's)"),
) -> None:
    """Build (or find cached) the micro world and its pretrained scales."""
    from ray_xt.study import resolve_inputs

    cfg = _load(experiment)
    if scales:
        cfg = parse_study({**cfg.model_dump(mode="json"), "scales": scales.split(",")}, f"{experiment} with --scales")
    resolved = resolve_inputs(cfg, use_ray=True)  # scales pretrain in parallel Ray tasks when missing
    typer.echo(f"world: {resolved.data_root}")
    for name, path in resolved.model_paths.items():
        typer.echo(f"{name}: {path}")


@command(micro_app, "check")
def micro_check(
    experiment: Path = typer.Argument(Path("experiments/micro_check.yaml"), help="a study with target tasks only"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: a local Ray instance)"),
) -> None:
    """Fine-tune each micro scale on English data and print zero-shot accuracy vs chance per language."""
    from ray_xt.report import log_report
    from ray_xt.study import StudyDriver
    from ray_xt.tasks.registry import TASKS
    from ray_xt.validity import (
        AVERAGE_ROW,
        constant_predictor_score,
        eval_example_counts,
        validity_table,
        validity_verdict,
    )

    cfg = _load(experiment)
    if cfg.intermediate.tasks:
        raise UsageError(f"{experiment}: intermediate.tasks must be empty for a validity check")
    _init_ray(address)
    runner = StudyDriver(cfg, log=lambda m: typer.echo(m))
    records = runner.run()
    assert runner.resolved is not None  # run() resolved the inputs
    data_root = runner.resolved.data_root
    chance = {task: constant_predictor_score(data_root, TASKS[task]) for task in cfg.target.tasks}
    table = validity_table(records, chance, cfg.scales)
    typer.echo("\nZero-shot scores (accuracy or F1, %) after English fine-tuning, beside chance (the best "
               "constant prediction on English dev):\n")
    languages = [lang for lang in table.index if lang != AVERAGE_ROW]
    counts = eval_example_counts(data_root, {t: TASKS[t] for t in cfg.target.tasks}, languages)
    validity = table.to_markdown() + "\n\n" + validity_verdict(table, cfg.scales, counts) + "\n"
    typer.echo(validity)
    out = runner.parts.paths.report / "validity.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(validity)
    where = runner.parts.storage.publish(out)
    run_id = log_report(runner.parts.tracker, cfg.name, [out], validity)  # the check's summary run in MLflow
    typer.echo(f"\n[ray-xt] written to {where} (MLflow run {run_id} in {without_password(runner.parts.tracker.uri)})")


@command(app)
def translate(
    root: Path = typer.Option(..., help="data root in xtreme's layout (intermediate/<task>/ holds the English files)"),
    task: str = typer.Option(..., help="intermediate task to translate (pair, multiple-choice or QA family)"),
    languages: str = typer.Option(..., help="comma-separated target languages, e.g. de,fr,sw"),
    model: str = typer.Option(..., help="transformers seq2seq MT model (hub id or folder)"),
    lang_token: str | None = typer.Option(None, help="forced first token per language, e.g. '__{lang}__' (M2M100)"),
    splits: str = typer.Option("train,dev", help="splits to translate"),
    workers: int = typer.Option(1, help="translator actors (one model each)"),
    gpus_per_worker: float = typer.Option(0, help="GPUs per translator actor"),
    batch_size: int = typer.Option(32),
    max_examples: int | None = typer.Option(None, help="translate only the first N examples"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: a local Ray instance)"),
) -> None:
    """Machine-translate an intermediate task's English data into target languages (a Ray Data job)."""
    from ray_xt.families import DataError
    from ray_xt.tasks.registry import TASKS
    from ray_xt.translate import TRANSLATABLE, translate_task

    if task not in TASKS or TASKS[task].family not in TRANSLATABLE:
        valid = sorted(t for t, s in TASKS.items() if s.family in TRANSLATABLE)
        raise UsageError(f"--task {task!r}: not a translatable task; valid: {valid}")
    langs = [x.strip() for x in languages.split(",") if x.strip()]
    english = root / "intermediate" / task
    if not english.is_dir():
        raise UsageError(f"--root {root}: no {english} (the English files of {task} in xtreme's layout); give the "
                         "data root `ray-xt data prepare` filled")
    _init_ray(address)
    try:
        results = translate_task(root, task, langs, model, tuple(splits.split(",")), lang_token, batch_size,
                                 workers, gpus_per_worker, max_examples=max_examples)
    except DataError as err:
        raise UsageError(f"error: {err}") from None
    for r in results:
        typer.echo(f"{task} {r.split} -> {r.lang}: {r.examples} examples ({r.dropped} dropped) in {r.path}")


@command(app)
def score(
    predictions: Path = typer.Option(..., help="submission folder: <task>/test-<lang>.{tsv,json}"),
    labels: Path = typer.Option(..., help="gold labels in the same layout"),
    json_out: Path | None = typer.Option(None, "--json", help="also write all scores to this JSON file"),
    languages: str | None = typer.Option(None, help="comma-separated languages to score (default: XTREME's "
                                            "list per task, else those the labels folder has, e.g. a micro world's)"),
) -> None:
    """Score an XTREME submission exactly as google-research/xtreme's evaluate.py does, plus the XTREME average."""
    import json

    from ray_xt.score import ScoreError, score_submission

    if json_out is not None and (why := _unwritable(json_out.parent) or (
            "it is a folder" if json_out.is_dir() else None)):
        raise UsageError(f"--json {json_out}: {why}; give a file path you can write")
    try:
        chosen = tuple(x.strip() for x in languages.split(",") if x.strip()) if languages else None
        overall, detailed = score_submission(predictions, labels, chosen)
    except ScoreError as err:
        raise UsageError(f"error: {err}") from None
    typer.echo("| task | languages | " + "avg metric |")
    typer.echo("| --- | --- | --- |")
    for task, scores in detailed.items():
        details = ", ".join(f"{k[4:]}={v:.2f}" for k, v in scores.items() if k.startswith("avg_") and k != "avg_metric")
        n_langs = len(next(v for v in scores.values() if isinstance(v, dict)))
        typer.echo(f"| {task} | {n_langs} | {scores['avg_metric']:.2f} ({details}) |")
    for group, value in overall.items():
        name = "XTREME score (all nine tasks)" if group == "all_task" else f"{group} average"
        typer.echo(f"{name}: {value:.2f}")
    if json_out:
        json_out.write_text(json.dumps({"overall": overall, "tasks": detailed}, indent=1) + "\n")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
