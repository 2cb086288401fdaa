"""`ray-xt cluster ...`: a study as a Ray job, run on the cluster's head (the CLUSTER= make targets call these)."""

from __future__ import annotations

from pathlib import Path

import typer

from ray_xt.cli_errors import command
from ray_xt.cluster_jobs import (
    ClusterJobError,
    StudyJob,
    choose,
    detached_message,
    entrypoint,
    follow,
    job_client,
    running,
    status_lines,
    submit,
)

cluster_app = typer.Typer(help="A study as a Ray job on the cluster this runs on (run these on the head node).",
                       no_args_is_help=True)


def checkout_root() -> Path:
    """The checkout this module is installed from (an editable install: ``<checkout>/ray_xt/cluster_cli.py``)."""
    return Path(__file__).resolve().parents[1]


def resolve_study_path(path: str, cwd: Path | None = None) -> Path:
    """``path`` as given when it exists from here (absolute, or relative to the working directory), else
    relative to the checkout, as the Makefile and README write it (``experiments/<study>.yaml``)."""
    given = Path(path).expanduser()
    here = Path(cwd or Path.cwd())
    if given.is_absolute():
        return given
    if (here / given).is_file():
        return (here / given).resolve()
    inside = checkout_root() / given
    return inside if inside.is_file() else here / given  # not found anywhere: loading it names it


def _follow_to_the_end(client, job) -> None:
    try:
        status = follow(client, job)
    except KeyboardInterrupt:
        typer.echo("\n" + detached_message(job))
        raise typer.Exit(130) from None
    typer.echo(f"[ray-xt] job {job.submission_id}: {status}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@command(cluster_app, "submit")
def submit_study(
    experiment: str = typer.Argument(..., help="study YAML, relative to the checkout on the head or absolute"),
    tracking_uri: str | None = typer.Option(None, help="MLflow tracking URI (the head's server: http://127.0.0.1:5000)"),
    storage: str | None = typer.Option(None, help="study storage every node sees (e.g. /mnt/shared/results)"),
    seeds: str | None = typer.Option(None, help="run only these of the study's seeds"),
    overrides: list[str] = typer.Option([], "--set", help="FIELD=VALUE, as for `ray-xt run`"),
    follow_logs: bool = typer.Option(True, "--follow/--no-follow",
                                     help="print the study's log until it ends (leaving it never stops the study)"),
) -> None:
    """Submit a study's driver as a Ray job on this cluster (refused while the same study runs here)."""
    from ray_xt.config import load_study, only_seeds

    path = resolve_study_path(experiment)
    args = [*(["--tracking-uri", tracking_uri] if tracking_uri else []), *(["--storage", storage] if storage else []),
            *(["--seeds", seeds] if seeds else []), *[x for o in overrides for x in ("--set", o)]]
    cfg = load_study(path, overrides)  # a bad study file is refused here, before a job exists
    if seeds:
        only_seeds(cfg, seeds, str(path))
    client = job_client()
    job_id = submit(client, cfg.name, entrypoint(checkout_root(), path, args))
    typer.echo(f"[ray-xt] study {cfg.name} submitted as Ray job {job_id}: it runs on the head whether or not this "
               "stays connected (make cluster-logs / cluster-status / cluster-stop CLUSTER=...)")
    if follow_logs:
        _follow_to_the_end(client, StudyJob(job_id, cfg.name, "PENDING", None))


@command(cluster_app, "logs")
def logs(
    job: str | None = typer.Argument(None, help="a job id or study name (default: the newest ray_xt job)"),
    replay_all: bool = typer.Option(False, "--all", help="the whole log, not only its last lines"),
) -> None:
    """Follow a study's log (re-attach): its last lines, then what it prints until it ends."""
    client = job_client()
    chosen = choose(client, job)
    if replay_all:
        typer.echo(client.get_job_logs(chosen.submission_id), nl=False)
        return
    _follow_to_the_end(client, chosen)


@command(cluster_app, "status")
def status() -> None:
    """Every ray_xt job on this cluster, newest first, with the running ones' latest progress line."""
    for line in status_lines(job_client()):
        typer.echo(line)


@command(cluster_app, "stop")
def stop(job: str | None = typer.Argument(None, help="a job id or study name (default: the newest running one)")) -> None:
    """Stop a running study's job (finished stages are kept; submitting it again continues it)."""
    client = job_client()
    chosen = choose(client, job) if job else (running(client) or [choose(client, None)])[0]
    if client.stop_job(chosen.submission_id):
        typer.echo(f"[ray-xt] asked job {chosen.submission_id} (study {chosen.study}) to stop")
    else:  # Ray stops only a job that still runs
        typer.echo(f"[ray-xt] job {chosen.submission_id} (study {chosen.study}) is {chosen.status}: nothing to stop")


GUARD_MARK = "ray-xt guard:"


@command(cluster_app, "guard")
def guard() -> None:
    """Before `ray up` of a running cluster: one line starting with 'ray-xt guard:' per study that runs here."""
    try:
        jobs = running(job_client())
    except (ClusterJobError, ConnectionError, RuntimeError):
        return  # no job server: nothing to end
    for job in jobs:
        typer.echo(f"{GUARD_MARK} study {job.study} runs on this cluster as job {job.submission_id} (since "
                   f"{job.since}); bringing the cluster up again restarts Ray and would end it. Wait for it "
                   "(make cluster-status CLUSTER=...), stop it (make cluster-stop CLUSTER=...), or update the "
                   "nodes without restarting Ray: make cluster-up CLUSTER=... NO_RESTART=1")
