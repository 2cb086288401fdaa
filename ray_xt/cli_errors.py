"""The CLI's one error boundary. Commands raise ``UsageError`` (or an error type the settings, data and scoring
layers raise for bad input); ``guarded``, behind which ``command`` registers every command, prints the message in
red on stderr and exits 2 — before any Ray process starts where the command checks first — never a traceback.
Every command is registered with ``command(app, ...)``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer


class UsageError(Exception):
    """Bad input a command refuses: the message names the field, file or value and what would be valid."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _refusals() -> tuple[type[Exception], ...]:
    """The error types that mean "bad input", from the layers that raise them (imported when a command fails)."""
    from ray_xt.cluster_jobs import ClusterJobError
    from ray_xt.config import ConfigError
    from ray_xt.data import DataError
    from ray_xt.score import ScoreError

    return UsageError, ConfigError, DataError, ScoreError, ClusterJobError


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _refusals()):
                raise
            typer.secho(str(err), fg="red", err=True)
            raise typer.Exit(getattr(err, "code", 2)) from None

    return run


def command(app: typer.Typer, name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@command(app, "name")`` in place of ``@app.command("name")``: the command registered behind ``guarded``."""
    register = app.command(name, **options)
    return lambda fn: register(guarded(fn))
