"""Build DeepSpeed's JIT ops once at install time, not inside the first (timed) trials.

On CPU, DeepSpeed compiles its shared-memory communication op the first time a
process group starts (~30 s on 2 cores); concurrent first trials would all wait
on that build.  `make install` runs this module so the build lands in the
torch-extensions cache before any sweep.
"""

from __future__ import annotations

import sys


def main() -> int:
    from ray_xt.deepspeed_ops import load_shm_comm_op
    from ray_xt.process_env import choose_deepspeed_accelerator

    choose_deepspeed_accelerator()
    try:
        if load_shm_comm_op() is not None:  # under the same lock as trials (ray_xt.deepspeed_ops)
            print("ray_xt.warmup: DeepSpeed shm comm op ready")
    except Exception as err:  # noqa: BLE001 - a missing compiler only costs speed: DeepSpeed falls back to plain gloo
        print(f"ray_xt.warmup: DeepSpeed op prebuild skipped ({err})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
