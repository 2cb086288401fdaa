"""Build DeepSpeed's JIT ops once at install time, not inside the first (timed) trials.

On CPU, DeepSpeed compiles its shared-memory communication op the first time a
process group starts (~30 s on 2 cores), and its CPU Adam the first time an
optimizer is offloaded (~45 s); concurrent first trials would all wait on those
builds.  `make install` runs this module so they land in the torch-extensions
cache before any sweep.
"""

from __future__ import annotations

import sys


def main() -> int:
    from ray_xt.deepspeed_ops import load_cpu_adam_op, load_shm_comm_op
    from ray_xt.process_env import choose_deepspeed_accelerator

    choose_deepspeed_accelerator()
    # under the same lock as trials (ray_xt.deepspeed_ops). A missing compiler: the comm op only costs speed
    # (DeepSpeed falls back to plain gloo); CPU Adam is needed by trials that offload their optimizer (xlmr-xl)
    for name, load in (("shm comm", load_shm_comm_op), ("CPU Adam", load_cpu_adam_op)):
        try:
            if load() is not None:
                print(f"ray_xt.warmup: DeepSpeed {name} op ready")
        except Exception as err:  # noqa: BLE001 - named, never fatal: a trial that needs it says so again
            print(f"ray_xt.warmup: DeepSpeed {name} op prebuild skipped ({err})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
