"""Warm trainer processes that outlive a sweep: Tune trials drive them, they do the training.

Why (docs/benchmarks.md, "Orchestration overhead"): Ray starts a fresh process for every Tune trial actor in
every sweep, and a process that trains must first import torch, transformers' model stack and DeepSpeed
(~6 s on 2 cores). A study runs many short sweeps, so that cost came back once per sweep and trial slot.

Here a study-wide ``TrainerPool`` (one small actor, owned by the study's driver: everything below dies with
it) keeps ``TrainerHost`` actors — 0 CPUs each, pinned to one node, modules imported once when created. A
one-process CPU trial (``ray_xt.trial.run_trial``) stays a Tune trial holding the trial's CPUs, so Tune's
scheduling, ASHA, OptunaSearch, retries and resume are unchanged, but it only *drives*: it leases an idle host
on its own node, starts its run there, and forwards every report (metrics and a checkpoint folder on the same
node) to ``tune.report``. The host's run uses the trial's CPU count for torch threads, so the node's CPUs are
what Tune reserved. The trial process itself is light (no torch), so a new sweep's trial actors start in ~1 s.

Stopping: Tune stops a trial (ASHA, end of sweep) by raising ``SystemExit`` from ``tune.report``; the
driving trial then cancels its run, which the host checks before every optimiser step. A run whose trial
vanished without a word (its process killed) stops at its next report, when no acknowledgement arrives.

GPU trials and worker-group trials do not use hosts: Ray assigns GPUs per actor (``CUDA_VISIBLE_DEVICES`` is
fixed when a process first touches CUDA), and a Ray Train worker group is its own set of actors.
"""

from __future__ import annotations

import gc
import os
import pickle
import queue
import threading
import time
import traceback
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import ray_xt.trial_workers as trial_workers
from ray_xt.loop import OneProcessSession  # light: torch is imported inside functions
from ray_xt.sessions import final_report

ACK_TIMEOUT_S = 900.0  # a report nobody takes for this long: the driving trial is gone, the run stops
CANCEL_WAIT_S = 1.0  # well below Tune's 2 s wait for a reused trial actor's thread (TUNE_FUNCTION_THREAD_TIMEOUT_S)
NEXT_POLL_S = 30.0


def pool_name() -> str:
    """A name unique to one study run: two drivers on one cluster never share hosts."""
    return f"ray_xt_trainer_pool_{uuid.uuid4().hex[:12]}"


class RunCancelled(Exception):
    """The driving trial stopped (or vanished): the run ends without an error."""


class HostSession(OneProcessSession):
    """``ray_xt.loop.train``'s session inside a host: reports go to the driving trial and wait for its ack."""

    def __init__(self, marker: str | None, resume_dir: str | None):
        self.marker = Path(marker) if marker else None
        self.resume_dir = resume_dir
        self.out: queue.Queue = queue.Queue()
        self.acked = threading.Event()
        self.cancelled = threading.Event()

    def checkpoint(self):
        return _LocalFolder(self.resume_dir) if self.resume_dir else None

    def report(self, metrics: dict, directory: str, name: str, final: bool = False) -> None:
        # the folder is deleted when this returns: the driving trial must have persisted it (tune.report) first
        self.acked.clear()
        self.out.put(("report", final_report({**metrics, "host_pid": os.getpid()}, final), directory))
        if not self.acked.wait(ACK_TIMEOUT_S) or self.cancelled.is_set():
            raise RunCancelled()

    def stop_requested(self) -> bool:
        return self.cancelled.is_set()


class _LocalFolder:
    """The checkpoint a retried trial resumes from, already a folder on this node (the driving trial holds it):
    what ``train`` needs of a ``tune.Checkpoint``, without importing Tune into the host (0.7 s)."""

    def __init__(self, path: str):
        self.path = path

    def as_directory(self):
        return nullcontext(self.path)


def _portable(err: BaseException) -> BaseException:
    """The run's exception as the driving trial will raise it (with the host's traceback as a note)."""
    text = "".join(traceback.format_exception(err))
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling keeps its type name and text
        err = RuntimeError(f"{type(err).__name__}: {err}")
    err.add_note(f"in the trainer host:\n{text}")
    return err


class TrainerHost:
    """One warm training process on one node; runs one trial's training at a time, in a thread."""

    def __init__(self, pool, index: int):
        from ray_xt.preload import preload

        self.pool, self.index = pool, index
        self.missing = preload()  # torch, the model classes, DeepSpeed: once for the study, not once per sweep
        try:  # DeepSpeed's CPU comm op (built at install), loaded now rather than in this host's first trial
            from ray_xt.deepspeed_ops import load_shm_comm_op

            load_shm_comm_op()
        except Exception:  # noqa: BLE001 - the trial loads it again (prepare_process) and fails there, with its error
            pass
        # The imports leave ~600,000 long-lived objects that every full garbage collection would walk again:
        # 0.5 s inside whichever trial triggers one (measured: a new sweep's first trial loading its features,
        # docs/benchmarks.md "Per-trial fixed cost"). Frozen, collections scan only what trials allocate.
        gc.freeze()
        self.sessions: dict[str, HostSession] = {}
        self.thread: threading.Thread | None = None

    def ready(self) -> dict:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "missing": self.missing,
                "frozen_objects": gc.get_freeze_count()}

    def start(self, run_id: str, config: dict, spec, marker: str | None, resume_dir: str | None,
              entry_time: float) -> None:
        if self.thread is not None:  # a cancelled run finishing its step
            self.thread.join()
        session = HostSession(marker, resume_dir)
        self.sessions[run_id] = session
        self.thread = threading.Thread(target=self._run, args=(run_id, config, spec, session, entry_time),
                                       name=f"trial-{run_id}", daemon=True)
        self.thread.start()

    def _run(self, run_id: str, config: dict, spec, session: HostSession, entry_time: float) -> None:
        from ray_xt.loop import Hyper, PhaseClock, train
        from ray_xt.process_env import prepare_process

        # since the trial function was entered (same node, wall clock): the lease, and a new host's start
        clock = PhaseClock(entry_time, {"host": time.time() - entry_time})
        outcome: tuple[str, BaseException | None, None]
        try:
            prepare_process(spec.cpus)
            train(spec, Hyper.of(config), session, clock)
            outcome = ("done", None, None)
        except RunCancelled:
            outcome = ("done", None, None)
        except BaseException as err:  # noqa: BLE001 - handed to the driving trial, which raises it to Tune
            outcome = ("error", _portable(err), None)
        # free for the next lease before the driving trial hears the end (a reused trial actor leases again at
        # once; were the release still in flight, the pool would start another host)
        try:
            import ray

            ray.get(self.pool.release.remote(self.index), timeout=30)
        except Exception:  # noqa: BLE001 - no pool (the study is ending): nothing to release to
            pass
        session.out.put(outcome)

    def next(self, run_id: str) -> tuple:
        """The run's next report, its end ("done") or its error; ("wait",) if nothing came for a while."""
        try:
            item = self.sessions[run_id].out.get(timeout=NEXT_POLL_S)
        except queue.Empty:
            return ("wait", None, None)
        if item[0] != "report":
            self.sessions.pop(run_id, None)
        return item

    def ack(self, run_id: str) -> None:
        self.sessions[run_id].acked.set()

    def cancel(self, run_id: str) -> None:
        """Stop the run before its next step; wait (briefly) for it, so a reused trial actor finds the host free."""
        session = self.sessions.pop(run_id, None)
        if session is None:
            return
        session.cancelled.set()
        session.acked.set()
        if self.thread is not None:
            self.thread.join(CANCEL_WAIT_S)


class TrainerPool:
    """Hosts per node, leased to driving trials: an idle one on the trial's node, or a new one there.

    A host is idle again only when its run ends and it says so (``release``): one whose process or node died
    mid-run never does, so it is never leased again."""

    def __init__(self):
        self.hosts: list = []  # (node_id, handle)
        self.idle: set[int] = set()

    def _new_host(self, node_id: str) -> int:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        index = len(self.hosts)
        me = ray.get_runtime_context().current_actor
        handle = ray.remote(TrainerHost).options(
            num_cpus=0, max_concurrency=4, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(me, index)
        self.hosts.append((node_id, handle))
        return index

    def warm(self, node_id: str, count: int) -> int:
        """Create hosts on a node until it has ``count``, before any trial asks (their imports overlap the
        study's data preparation)."""
        have = sum(1 for node, _ in self.hosts if node == node_id)
        for _ in range(count - have):
            self.idle.add(self._new_host(node_id))
        return max(0, count - have)

    def lease(self, node_id: str) -> tuple[int, object, bool]:
        """(index, host, created): an idle host on ``node_id``, or a new one."""
        for index in sorted(self.idle):
            if self.hosts[index][0] == node_id:
                self.idle.discard(index)
                return index, self.hosts[index][1], False
        index = self._new_host(node_id)
        return index, self.hosts[index][1], True

    def release(self, index: int) -> None:
        self.idle.add(index)

    def shutdown(self) -> None:
        """End every host once its current call returns (a kill would print Ray's SIGTERM trace per host)."""
        for _, handle in self.hosts:
            handle.__ray_terminate__.remote()

    def describe(self) -> list[dict]:
        return [{"index": i, "node_id": node, "idle": i in self.idle} for i, (node, _) in enumerate(self.hosts)]


def stop_pool(pool) -> None:
    """End the pool and its hosts (they would also end with the pool's owner, the study's driver)."""
    import ray

    try:
        ray.get(pool.shutdown.remote(), timeout=30)
        pool.__ray_terminate__.remote()
    except Exception:  # noqa: BLE001 - a pool that is already gone took its hosts with it
        ray.kill(pool)


def start_pool(name: str):
    """The study's pool, on the driver's node (0 CPUs), owned by the caller: it and its hosts die with it.

    Pinned hard: the hosts are the pool's actors and die with it, so a pool on any other node would take every
    host of the study down with that node (seen on a local cluster: Ray placed a *soft*-pinned 0-CPU pool on a
    worker node, and killing that node failed trials on the surviving ones). The driver's node going down ends
    the study anyway."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return ray.remote(num_cpus=0, max_restarts=0)(TrainerPool).options(
        name=name, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote()


def lease_host(pool: str, node_id: str):
    """A host on ``node_id`` from the study's pool, or None when the pool is gone (its node or the study's
    driver died): the trial then trains in its own process, slower to start but the sweep goes on."""
    import ray

    try:
        host: Any
        _, host, _ = ray.get(ray.get_actor(pool).lease.remote(node_id))
        return host
    except (ValueError, ray.exceptions.RayActorError) as err:  # ValueError: no actor of that name
        print(f"[ray-xt] trainer pool {pool} unavailable ({type(err).__name__}): this trial trains in its own "
              "process")
        return None


def run_on_host(config: dict, spec, marker: Path | None, entry_time: float) -> bool:
    """The Tune trial's side: lease a host on this node, drive its run, forward its reports to Tune.

    False, having done nothing, when no host could be leased."""
    import ray
    from ray import tune

    host = lease_host(spec.trainer_pool, ray.get_runtime_context().get_node_id())
    if host is None:
        return False
    run_id = uuid.uuid4().hex
    resumed = tune.get_checkpoint()
    try:
        # a checkpoint from the trial's storage, as a local folder for as long as the run may read it
        with resumed.as_directory() if resumed is not None else nullcontext() as resume_dir:
            ray.get(host.start.remote(run_id, config, spec, str(marker) if marker else None, resume_dir, entry_time))
            # a warm process for the trial actor after this one, asked for now that the host trains (this process
            # only forwards reports): asked for while a new host was still importing, the process starting beside
            # it made this trial wait ~1 s longer for the host
            trial_workers.replace_this_worker()
            while True:
                kind, payload, directory = ray.get(host.next.remote(run_id))
                if kind == "wait":
                    continue
                if kind == "done":
                    return True
                if kind == "error":
                    raise payload
                # actor_replacement: 1 once this trial's actor has had a worker prestarted for the next one
                tune.report({**payload, "actor_replacement": float(trial_workers.replacement_asked)},
                            checkpoint=tune.Checkpoint.from_directory(directory))
                host.ack.remote(run_id)
    finally:
        # Tune stopping the trial (SystemExit from tune.report) or any error here: the run must not go on
        try:
            ray.get(host.cancel.remote(run_id), timeout=CANCEL_WAIT_S + 0.5)
        except Exception:  # noqa: BLE001 - a dead host needs no cancelling
            pass
