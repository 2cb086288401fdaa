"""`make install`'s check: a TORCH_SPEC that names a CUDA index must have installed a CUDA build of torch.

pip falls back to its other indexes (or a local wheel) when the CUDA index is unreachable and exits 0 with a CPU
build; a GPU node would then train on its CPU without a word. Run as ``python -m ray_xt.torch_check "$TORCH_SPEC"``.
"""

from __future__ import annotations

import re
import sys


def torch_problem(spec: str, cuda_version: str | None, torch_version: str) -> str | None:
    """Why the installed torch does not satisfy ``spec`` (None: it does)."""
    if re.search(r"/whl/cu\d+", spec) and not cuda_version:
        return (f"make install: TORCH_SPEC ({spec}) asks for a CUDA build, but torch {torch_version} without CUDA "
                "is installed (was the CUDA index unreachable?): GPU trials would run on the CPU. Make the index "
                "reachable or fix TORCH_SPEC, then run make install again.")
    return None


def main(argv: list[str] | None = None) -> None:
    import torch

    spec = " ".join(sys.argv[1:] if argv is None else argv)
    problem = torch_problem(spec, torch.version.cuda, torch.__version__)
    if problem:
        sys.exit(problem)


if __name__ == "__main__":
    main()
