"""Every use of Ray's non-public modules, in one place: version-checked, with plain Ray as the fallback.

ray_xt's fast-start layer (``ray_xt.trial_workers``: workers prestarted for Tune's trial actors) needs what
Ray's Python API does not expose: the raylet's ``PrestartWorkers`` RPC (``ray.core.generated`` protobuf stubs,
``ray._private.grpc_utils.init_grpc_channel`` for a channel with Ray's token authentication,
``ray._private.utils.ProtoRuntimeEnvInfo``) and the environment Tune gives trial actors
(``ray.tune.execution.class_cache``). Ray may move any of them in any release. So:

- they are imported only here, only for Ray versions this code was tested with (``TESTED_RAY``);
- when the version is another one, an import fails, or ``RAY_XT_FAST_START=0``, ``raylet_api()`` is None with
  the reason (printed once), and ray_xt runs plain Ray and Tune: trial actors start in new processes, ~3 s per
  sweep on a CPU machine, nothing on a GPU cluster's hour-long trials;
- the layer is on by default only for a Ray instance ray_xt starts on this machine (``start_ray`` without an
  address); on a cluster it stays off (``fast_start_enabled``).

``tests/test_ray_internals.py`` breaks the import and the version on purpose and runs a sweep without them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

TESTED_RAY = ((2, 50), (2, 60))  # inclusive range of Ray minor versions the private calls were tested with
FAST_START_ENV = "RAY_XT_FAST_START"  # "1": on (set by start_ray for a local instance); "0" or unset: off
_told = False


@dataclass(frozen=True)
class RayletAPI:
    # Ray's generated protobuf modules and private helpers: no type information to check against
    init_grpc_channel: Any
    proto_runtime_env_info: Any
    common_pb2: Any
    node_manager_pb2: Any
    node_manager_pb2_grpc: Any


def ray_version() -> tuple[int, int]:
    import ray

    major, minor = (int(x) for x in ray.__version__.split(".")[:2])
    return major, minor


def fast_start_enabled() -> bool:
    return os.environ.get(FAST_START_ENV) == "1"


@functools.cache
def _load() -> tuple[RayletAPI | None, str | None]:
    version = ray_version()
    if not TESTED_RAY[0] <= version <= TESTED_RAY[1]:
        return None, (f"Ray {'.'.join(map(str, version))} is outside the versions its private calls were tested "
                      f"with ({'.'.join(map(str, TESTED_RAY[0]))} to {'.'.join(map(str, TESTED_RAY[1]))})")
    try:
        from ray._private.grpc_utils import init_grpc_channel
        from ray._private.utils import ProtoRuntimeEnvInfo
        from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc

        if not hasattr(node_manager_pb2, "PrestartWorkersRequest"):  # the RPC must exist, not just the module
            raise ImportError("ray.core.generated.node_manager_pb2 has no PrestartWorkersRequest")
        return RayletAPI(init_grpc_channel, ProtoRuntimeEnvInfo, common_pb2, node_manager_pb2,
                         node_manager_pb2_grpc), None
    except (ImportError, AttributeError) as err:
        return None, f"Ray's internals moved ({type(err).__name__}: {err})"


def raylet_api() -> RayletAPI | None:
    """The private raylet calls, or None (fast start off, another Ray version, a failed import)."""
    global _told
    if not fast_start_enabled():
        return None
    api, reason = _load()
    if api is None and not _told:
        _told = True
        print(f"[ray-xt] fast start off: {reason}; trial actors start as Ray starts them")
    return api


def unavailable_reason() -> str | None:
    if not fast_start_enabled():
        return f"{FAST_START_ENV} is not 1 (a cluster, or turned off)"
    return _load()[1]


def tune_actor_env_vars(environ) -> dict[str, str]:
    """The variables Tune gives a trial actor created in a process with ``environ`` (its defaults and the ones it
    propagates), or none where ``ray.tune.execution.class_cache`` has moved."""
    try:
        from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE
    except ImportError:
        return {}
    return {**DEFAULT_ENV_VARS, **{k: environ[k] for k in ENV_VARS_TO_PROPAGATE if k in environ}}


def is_ray_sigterm_exit(err: BaseException | None) -> bool:
    """The SystemExit Ray's worker raises on SIGTERM (its handler marks it with the reason, ``ray_terminate_msg``:
    ``ray._raylet.raise_sys_exit_with_custom_error_message``). False for any other exception, and wherever Ray
    stops marking it: the exception then prints as Python prints it."""
    return isinstance(err, SystemExit) and "SIGTERM" in str(getattr(err, "ray_terminate_msg", ""))


def preimport() -> None:
    """What a prestarted worker imports while it waits, so its trial actor's own prestart call is quick."""
    if raylet_api() is not None:
        import ray.tune  # noqa: F401
