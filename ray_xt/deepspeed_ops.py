"""DeepSpeed's JIT-built CPU ops, loaded so that a process killed while loading one cannot stall later trials.

On CPUs DeepSpeed starts every process group with its shared-memory communication op, which torch builds or
loads through ``torch.utils.cpp_extension.load``. Every new process takes torch's build lock for that step — a
``lock`` file in the op's build folder, created and deleted around a ninja run even when nothing needs
building — and any other process finding the file waits until it is gone, without a time limit. A process
killed inside that second (a lost node, a killed driver, a trial stopped mid-start) leaves the file behind,
and from then on every DeepSpeed engine in the environment waits forever: seen in CI, where a fault test
killed a node while its host was starting DeepSpeed and the next test's eight trials hung at their start.

So ray_xt loads the op itself, once per process, under a kernel file lock (``flock``, released by the kernel
when its holder dies, however it dies), before DeepSpeed asks for it; DeepSpeed then takes the loaded module
from its own cache. Holding that lock, a ray_xt process knows no other ray_xt process is inside torch's step,
so a torch lock file found then was left by a dead process, or belongs to another program building in the same
folder: it is removed once it is ``STALE_AFTER_S`` old (an actual build takes about a minute on 2 cores).
"""

from __future__ import annotations

import fcntl
import sys
import time
from pathlib import Path

STALE_AFTER_S = 90.0
POLL_S = 0.5
_loaded: dict[str, object] = {}  # this process's ops: a warm host loads once for all its trials


def load_shm_comm_op():
    """DeepSpeed's CPU shared-memory communication op, built if needed and loaded into DeepSpeed's op cache;
    None where the accelerator has no such op (GPUs) or it cannot be built here."""
    return load_op("ShareMemCommBuilder")


def load_cpu_adam_op():
    """DeepSpeed's CPU Adam (what ``DeepSpeedCPUAdam`` steps an offloaded optimizer with), built and loaded the same
    way before the optimizer asks for it: a worker-group trial's ranks load it at once, and a rank killed inside
    torch's step would otherwise stall every later offloaded trial."""
    return load_op("CPUAdamBuilder")


def load_op(builder_name: str):
    """The accelerator's op ``builder_name``, built if needed and loaded into DeepSpeed's op cache under a kernel
    lock; None where the accelerator has no such op or it cannot be built here."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder(builder_name)
    if builder is None or not deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
        return None
    if builder.name in _loaded:
        return _loaded[builder.name]
    folder = build_folder(builder.name)
    try:
        lock = open(folder / "ray_xt.flock", "a")
    except OSError:  # a read-only environment: nothing is built here, and no lock to guard
        _loaded[builder.name] = builder.load()
        return _loaded[builder.name]
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        clear_stale_build_lock(folder)
        _loaded[builder.name] = builder.load()
    return _loaded[builder.name]


def build_folder(name: str) -> Path:
    """Where torch builds the op ``name`` (``TORCH_EXTENSIONS_DIR``, set by ray_xt to the environment's)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


def clear_stale_build_lock(folder: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Wait for torch's lock file in ``folder`` to go, or remove it once it is ``stale_after_s`` old.
    Call only while holding ``ray_xt.flock`` there. True if a lock file was removed."""
    baton = folder / "lock"
    while True:
        try:
            age = time.time() - baton.stat().st_mtime
        except FileNotFoundError:
            return False
        if age >= stale_after_s:
            baton.unlink(missing_ok=True)
            print(f"[ray-xt] removed {baton}: torch's build lock, left {age:.0f} s ago by a process that died "
                  "while loading a DeepSpeed op", file=sys.stderr)
            return True
        time.sleep(POLL_S)
