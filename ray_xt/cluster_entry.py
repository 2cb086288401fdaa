"""Entry script for `ray submit clusters/<cluster>.yaml ray_xt/cluster_entry.py -- submit experiments/<study>.yaml`.

`ray submit` copies this file to the head node as ``~/cluster_entry.py`` and runs ``python ~/cluster_entry.py
ARGS`` in the SSH user's home; the project is installed on every node by the cluster file's setup commands (the
checkout at ``~/ray-xt``, a name that can never be imported). This hands ARGS to ``ray-xt cluster`` (submit,
logs, status, stop): the study's driver becomes a Ray job on the head, so the SSH session only follows it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def without_own_folder(path: list[str], script: str) -> list[str]:
    """``sys.path`` without the folder this script runs from (the home folder `ray submit` copies it to): a
    folder there named like the package would otherwise be imported as an empty namespace package."""
    here = Path(script).resolve().parent
    return [p for p in path if not p or Path(p).resolve() != here]


def main(argv: list[str] | None = None) -> None:
    sys.path[:] = without_own_folder(sys.path, __file__)
    from ray_xt.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: ray submit <cluster.yaml> ray_xt/cluster_entry.py -- submit <experiment.yaml> [options]")
    app(["cluster", *args])


if __name__ == "__main__":
    main()
