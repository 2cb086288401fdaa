"""Entry script for `ray submit clusters/<cluster>.yaml ray_xt/cluster_entry.py -- experiments/<study>.yaml`.

`ray submit` copies this file to the head node and runs it there with the arguments after `--`; the
project is installed on every node by the cluster YAML's setup commands, so this only hands over to
`ray-xt run` attached to the running cluster (`--address auto`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from ray_xt.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: ray submit <cluster.yaml> ray_xt/cluster_entry.py -- <experiment.yaml> [ray-xt run options]")
    if "--address" not in args:
        args += ["--address", "auto"]
    app(["run", *args])


if __name__ == "__main__":
    main()
