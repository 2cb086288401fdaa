"""Entry script for `ray submit clusters/<cluster>.yaml ray_xt/cluster_entry.py -- experiments/<study>.yaml`.

`ray submit` copies this file to the head node (as `~/cluster_entry.py`) and runs it there, in the SSH user's
home, with the arguments after `--`; the project is installed on every node by the cluster YAML's setup
commands. A relative study path is the user's path inside the checkout, so it is resolved against the checkout
the installed ray_xt lives in (`~/ray_xt` on the head), then this hands over to `ray-xt run` attached to the
running cluster (`--address auto`).
"""

from __future__ import annotations

import sys
from pathlib import Path


def checkout_root() -> Path:
    """The checkout of the installed ray_xt (an editable install: ``<checkout>/ray_xt/__init__.py``)."""
    import ray_xt

    return Path(ray_xt.__file__).resolve().parents[1]


def resolve_study_path(path: str, cwd: Path | None = None) -> str:
    """``path`` as given when it exists from here (absolute, or relative to the working directory), else
    relative to the checkout, as the Makefile and README write it (``experiments/<study>.yaml``)."""
    given = Path(path).expanduser()
    if given.is_absolute() or (Path(cwd or Path.cwd()) / given).is_file():
        return str(given)
    inside = checkout_root() / given
    return str(inside) if inside.is_file() else str(given)  # not found anywhere: `ray-xt run` names it


def main(argv: list[str] | None = None) -> None:
    from ray_xt.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: ray submit <cluster.yaml> ray_xt/cluster_entry.py -- <experiment.yaml> [ray-xt run options]")
    args[0] = resolve_study_path(args[0])
    if "--address" not in args:
        args += ["--address", "auto"]
    app(["run", *args])


if __name__ == "__main__":
    main()
