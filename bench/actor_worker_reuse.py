"""Which idle Ray workers does a new actor get? The reason every Tune sweep starts its trial actors in new processes.

    .venv/bin/python bench/actor_worker_reuse.py

Each case starts its own local Ray (2 CPUs, ray_xt's system settings: idle workers kept a minute), lets Ray prestart its
workers, optionally runs two no-op tasks with the actor's runtime environment (leaving two idle workers with exactly
that environment), then creates one actor and reports whether it landed in a process that was already idle and how
long it took to answer. The last two cases are a real Tune sweep (two trials, two slots), whose trial actors Tune
always gives ``{"env_vars": {"PL_DISABLE_FORK": "1"}}``; in the last, two workers were prestarted for them as ray_xt
does (``ray_xt.trial_workers``). Results: docs/benchmarks.md, "Orchestration overhead".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

TUNE_ENV = {"env_vars": {"PL_DISABLE_FORK": "1"}}
CASES = {
    "actor, no runtime env": dict(actor_env=None, warm=False, placement_group=False),
    "actor, no runtime env, after 2 no-op tasks, 1 CPU in a placement group": dict(
        actor_env=None, warm=True, placement_group=True),
    "actor with Tune's runtime env": dict(actor_env=TUNE_ENV, warm=False, placement_group=False),
    "actor with Tune's runtime env, after 2 no-op tasks with it": dict(actor_env=TUNE_ENV, warm=True,
                                                                     placement_group=False),
    "actor with Tune's runtime env, after 2 no-op tasks with it, 1 CPU in a placement group": dict(
        actor_env=TUNE_ENV, warm=True, placement_group=True),
    "Tune sweep, after 2 no-op tasks with Tune's runtime env": dict(actor_env=TUNE_ENV, warm=True, tune=True),
    # what ray_xt does since 2026-12-02: ray_xt's job runtime env (its setup hook imports Tune into workers
    # started in Tune's environment) and 2 workers prestarted for the sweep's trial actors
    "Tune sweep, 2 workers prestarted for its trial actors (ray_xt.trial_workers)": dict(
        actor_env=None, warm=False, tune=True, prestarted=2),
}


def idle_worker_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ray::IDLE"], capture_output=True, text=True).stdout.split()
    return {int(p) for p in out}


def run_case(actor_env: dict | None, warm: bool, placement_group: bool = False, tune: bool = False,
             prestarted: int = 0) -> dict:
    import ray
    from ray.util.placement_group import placement_group as make_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from ray_xt.local_ray import job_runtime_env, ray_system_config
    from ray_xt.trial_workers import prestart_for_tune

    other_rays_workers = idle_worker_pids()  # another Ray on this machine: not ours to count
    # ray_xt's worker settings (idle workers kept a minute), but no job runtime env unless workers are prestarted
    # the way ray_xt does it: the other cases set their own
    if prestarted:  # ray_xt's fast-start layer, as start_ray turns it on for a local instance
        from ray_xt.ray_internals import FAST_START_ENV

        os.environ[FAST_START_ENV] = "1"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=ray_system_config(),
             **({"runtime_env": job_runtime_env()} if prestarted else {}))

    @ray.remote(num_cpus=0)
    def no_op() -> int:
        return os.getpid()

    @ray.remote
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    time.sleep(4)  # Ray prestarts its workers when the driver connects
    if prestarted:
        prestart_for_tune(ray.get_runtime_context().get_node_id(), prestarted)
        time.sleep(6)  # they start and import Tune
    if warm:
        ray.get([no_op.options(runtime_env=actor_env or {}).remote() for _ in range(2)])
        time.sleep(1)
    idle = idle_worker_pids() - other_rays_workers
    start = time.perf_counter()
    if tune:
        pids = run_tune_sweep()
    else:
        options: dict = {"runtime_env": actor_env} if actor_env else {}
        if placement_group:
            group = make_placement_group([{"CPU": 1}])
            ray.get(group.ready())
            options.update(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(group))
        actor = Probe.options(**options).remote()
        pids = [ray.get(actor.pid.remote())]
    seconds = time.perf_counter() - start
    ray.shutdown()
    return {"idle_workers_before": len(idle), "actors_in_an_idle_worker": sum(p in idle for p in pids),
            "actors": len(pids), "seconds_to_answer": round(seconds, 2)}


def run_tune_sweep() -> list[int]:
    from ray import tune

    def trainable(config):
        tune.report({"pid": os.getpid()})

    with tempfile.TemporaryDirectory() as storage:
        results = tune.Tuner(trainable, param_space={"x": tune.grid_search([0, 1])},
                             tune_config=tune.TuneConfig(max_concurrent_trials=2),
                             run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
        return [r.metrics["pid"] for r in results]


def main() -> None:
    if len(sys.argv) == 2:  # one case per process: each needs a Ray of its own
        print(json.dumps(run_case(**CASES[sys.argv[1]])))
        return
    print("| case | idle workers before | actors placed in an idle worker | seconds to answer |")
    print("| --- | --- | --- | --- |")
    for name in CASES:
        out = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {name} | {row['idle_workers_before']} | {row['actors_in_an_idle_worker']} of {row['actors']} "
              f"| {row['seconds_to_answer']} |", flush=True)


if __name__ == "__main__":
    main()
