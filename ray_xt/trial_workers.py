"""Warm processes for Tune's trial actors, started before a sweep asks for them.

Why (docs/benchmarks.md, "Per-trial fixed cost"): Tune creates new trial actors for every experiment and ray_xt
runs one experiment per stage. Ray places an actor only in a worker that has never run a task and whose runtime
environment hashes like the actor's, and Tune gives its actors an environment of their own (the job's plus
``PL_DISABLE_FORK``, ``ray.tune.execution.class_cache``), which no worker Ray starts by itself has. So every
sweep's first trial waited 2.7-3.1 s for a new process to start and import ``ray.tune``.

The raylet starts workers for a given job and runtime environment ahead of time when asked (its
``PrestartWorkers`` RPC, which Ray's C++ core worker uses and its Python API does not expose). ray_xt asks:

- when a trial actor's first trial is under way (a hosted trial: once its trainer host runs), for one worker to
  replace it, on its node, in its own environment (``replace_this_worker``), so the next sweep finds one ready;
- when a study without trainer hosts (GPU trials) starts, for one worker per trial slot on the driver's node, in
  the environment Tune will give its actors (``prestart_for_tune``: Tune's variables merged onto the job's
  environment as Ray's core worker merges a child's). With hosts, the first trials wait for a new host's imports
  anyway, and a process starting beside them only made that wait longer.

A worker started for Tune's environment imports ``ray.tune`` and the trainable's module when it starts
(``setup_worker``, the job's ``worker_process_setup_hook``), so creating a trial actor only unpickles the
trainable. Nothing here is needed for correctness: if Ray or Tune change either rule, trial actors start in new
processes as before (and tests/test_trial_workers.py fails). Every private Ray call goes through
``ray_xt.ray_internals``, which turns this layer off on clusters, on untested Ray versions and when an import
fails. Kept light: every Ray worker imports this module.
"""

from __future__ import annotations

import importlib
import json
import os

# What Tune adds to every trial actor's environment (ray.tune.execution.class_cache.DEFAULT_ENV_VARS; a test
# checks they agree). Written out here because the setup hook must not import ray.tune to find it out.
TUNE_ACTOR_MARK = ("PL_DISABLE_FORK", "1")
# A prestarted worker outlives Ray's idle-worker killing this long: long enough for the next sweep to come.
KEEP_ALIVE_S = 600
SETUP_HOOK = f"{__name__}.setup_worker"
# the trainable's module, warmed by name: it imports this module (replace_this_worker), not the other way round
TRAINABLE_MODULE = "ray_xt.trial"

_replaced_this_worker = False
replacement_asked = False  # this process's replace_this_worker reached its raylet (reported by hosted trials)
warmed_at: float | None = None  # when setup_worker imported Tune into this process (wall clock), if it did


def setup_worker() -> None:
    """The job's ``worker_process_setup_hook``: a process started for a Tune trial actor imports, while it waits
    for one, what creating the actor needs (``ray.tune`` ~1.6 s, the trainable's module); other workers
    import nothing."""
    global warmed_at
    name, value = TUNE_ACTOR_MARK
    if os.environ.get(name) == value:
        import time

        from ray_xt import ray_internals

        ray_internals.preimport()  # Tune, and the raylet stubs for this actor's own replace_this_worker

        importlib.import_module(TRAINABLE_MODULE)

        warmed_at = time.time()


def merged_runtime_env(parent: dict, child: dict) -> dict:
    """``child``'s runtime environment over ``parent``'s as Ray's core worker merges them
    (``CoreWorker::OverrideRuntimeEnv``): the child's fields replace the parent's, except ``env_vars``, which
    are merged key by key."""
    merged = dict(parent)
    for key, value in child.items():
        if key == "env_vars" and "env_vars" in merged:
            merged["env_vars"] = {**merged["env_vars"], **value}
        else:
            merged[key] = value
    return merged


def serialized(runtime_env: dict) -> str:
    """A merged runtime environment as the core worker writes it (nlohmann::json's ``dump``: keys sorted, no
    spaces); Ray matches a worker to an actor by a hash of exactly this text."""
    return json.dumps(runtime_env, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tune_actor_runtime_env(job_runtime_env: dict, environ=None) -> dict:
    """The runtime environment Tune gives a trial actor created in a process with ``environ``: its default
    variables and the ones it propagates from that process, over the job's environment."""
    from ray_xt.ray_internals import tune_actor_env_vars

    environ = os.environ if environ is None else environ
    return merged_runtime_env(job_runtime_env, {"env_vars": tune_actor_env_vars(environ)})


class FastStartOff(RuntimeError):
    """The private raylet calls are not to be used (a cluster, another Ray version, a failed import)."""


def prestart(node_id: str, runtime_env: dict, count: int, keep_alive_s: int = KEEP_ALIVE_S) -> None:
    """Ask ``node_id``'s raylet to start ``count`` workers of this job in ``runtime_env`` now."""
    import ray
    from ray.runtime_env import RuntimeEnvConfig

    from ray_xt import ray_internals

    api = ray_internals.raylet_api()
    if api is None:
        raise FastStartOff(ray_internals.unavailable_reason())
    if count <= 0:
        return
    info = api.proto_runtime_env_info(serialized_runtime_env=serialized(runtime_env))
    info.runtime_env_config.CopyFrom(RuntimeEnvConfig.default_config().build_proto_runtime_env_config())
    request = api.node_manager_pb2.PrestartWorkersRequest(
        language=api.common_pb2.PYTHON, job_id=bytes.fromhex(ray.get_runtime_context().get_job_id()),
        runtime_env_info=info, keep_alive_duration_secs=keep_alive_s, num_workers=count,
    )
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id and n["Alive"])
    channel = api.init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")  # with Ray's token
    try:
        api.node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(request, timeout=10)
    finally:
        channel.close()


def prestart_for_tune(node_id: str, count: int) -> bool:
    """From a process of the job (the study's driver): ``count`` workers on ``node_id`` ready for trial actors
    that Tune creates in a process with this one's environment. False (and nothing started) if the raylet
    could not be asked: the sweeps then start their actors as Ray does by itself."""
    import ray

    try:
        job_env = json.loads(ray.get_runtime_context().get_runtime_env_string())
        prestart(node_id, tune_actor_runtime_env(job_env), count)
        return True
    except FastStartOff:
        return False  # said once by ray_internals
    except Exception as err:  # noqa: BLE001 - an optimisation only; say why and go on
        print(f"[ray-xt] could not prestart trial-actor workers ({type(err).__name__}: {err}); "
              "each sweep's trial actors start new processes")
        return False


def replace_this_worker() -> bool:
    """In a Tune trial actor, once per process: a worker in this actor's own environment on its node, for the
    trial actor that comes after it (the next sweep's). False when it was done before or could not be done."""
    global _replaced_this_worker, replacement_asked
    import ray

    if _replaced_this_worker:
        return False
    _replaced_this_worker = True
    context = ray.get_runtime_context()
    try:
        prestart(context.get_node_id(), json.loads(context.get_runtime_env_string()), 1)
        replacement_asked = True
        return True
    except FastStartOff:
        return False
    except Exception as err:  # noqa: BLE001 - an optimisation only
        print(f"[ray-xt] could not prestart a worker for the next trial actor ({type(err).__name__}: {err})")
        return False
