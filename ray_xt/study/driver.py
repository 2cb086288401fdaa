"""A whole study: its inputs resolved, its stages expanded, the finished ones skipped, the rest scheduled as Ray
tasks (``parallel_stages`` at once, each a StageRunner) and their records stored."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from ray_xt import storage
from ray_xt.config import StudyConfig
from ray_xt.progress import StudyProgress, measured_device_hours
from ray_xt.records import StageRecord
from ray_xt.stages import Stage, expand
from ray_xt.study.inputs import Resolved, resolve_inputs
from ray_xt.study.layout import StudyParts, absolute_uri, git_revision
from ray_xt.study.stage import StageContext, StageFailed, StageRunner, execute_stage, hosted
from ray_xt.study.stopping import STOP_GRACE_SECONDS, StopRequest, StudyInterrupted
from ray_xt.warm_start import samples_for


class StudyDriver:
    """A whole study: resolves its data and models, expands it into stages, skips finished ones, schedules the rest
    (``parallel_stages`` at once, each as a Ray task running a StageRunner) and stores their records."""

    def __init__(self, cfg: StudyConfig, tracking_uri: str | None = None, log: Callable[[str], None] = print,
                 stop: StopRequest | None = None):
        """``stop``: the signals' request to stop (``ray_xt.study.stopping``; the CLI installs its handlers)."""
        self.cfg = cfg
        self.parts = StudyParts.of(cfg, absolute_uri(tracking_uri or cfg.tracking.uri))
        self.log = log
        self.stop = stop or StopRequest()
        self.git_revision = git_revision()
        self.resolved: Resolved | None = None
        self.trainer_pool: str | None = None  # the running study's TrainerPool name (ray_xt.trainer_hosts)
        self.prepared: list | None = None  # prepare_data's entries when the caller prepared the data already
        self.progress = StudyProgress(0, 0, {})  # this run's, from run()
        self.summary_run_id = ""  # the study's MLflow summary run, found once per run (its progress metrics)

    def context(self) -> StageContext:
        assert self.resolved is not None, "resolve the study's inputs first"
        return StageContext(self.cfg, self.parts.tracker.uri, self.resolved, self.git_revision, self.trainer_pool)

    def stage_runner(self) -> StageRunner:
        """A stage runner in this process, sharing this driver's feature cache."""
        return StageRunner(self.context(), features=self.parts.features)

    # ---- the whole study ----------------------------------------------------------------------
    def run(self, progress: bool = True) -> list[StageRecord]:
        """Runs what is not finished, independent stages concurrently (``parallel_stages`` at once), each as a
        Ray task driving its own Tune sweep; a stage starts when its upstream has finished."""
        started = time.perf_counter()
        self.resolved = resolve_inputs(self.cfg, use_ray=True, progress=progress, prepared=self.prepared)
        self.log(f"[ray-xt] inputs ready in {time.perf_counter() - started:.0f}s (data: {self.resolved.data_root})")
        stages = expand(self.cfg)
        number = {s.key: i for i, s in enumerate(stages, 1)}
        done: dict[str, StageRecord] = {}
        for stage in stages:
            record = self.parts.store.get(stage)
            if record is not None:
                done[stage.key] = record
        pending = [s for s in stages if s.key not in done]
        self.log(f"[ray-xt] {len(stages)} stages: {len(done)} done before (skipped), {len(pending)} to run")
        self._resume_lines(pending)
        self.stop.progress = (len(done), len(stages), 0)
        self.progress = self._planned_progress(stages, pending, len(done))
        pool = self._start_trainer_pool(pending)
        try:
            if self.cfg.sequential is not None:
                self._run_rounds(stages, done, number)
            else:
                self._run_pending(pending, done, number, len(stages))
        finally:
            if pool is not None:
                from ray_xt.trainer_hosts import stop_pool

                stop_pool(pool)
        self.log(f"[ray-xt] study {self.cfg.name}: {len(stages)} stages in {time.perf_counter() - started:.0f}s; "
                 f"features tokenised {self.parts.features.misses}x, reused {self.parts.features.hits}x (trials only read them)")
        return [done[s.key] for s in stages if s.key in done]  # a sequential study runs only what its looks ask

    def _run_rounds(self, stages: list[Stage], done: dict[str, StageRecord], number: dict[str, int]) -> None:
        """Seeds added while a primary contrast is undecided (ray_xt.sequential): each round runs the stages the
        looks so far ask for, then the next look is made from the records."""
        from ray_xt.sequential import replay

        while True:
            state = replay(self.cfg, stages, done)
            wanted = {s.key for s in state.wanted}
            todo = [s for s in stages if s.key in wanted and s.key not in done]
            self.log(f"[ray-xt] sequential seeds: {state.looks_made} look(s) made; "
                     + ", ".join(f"{sum(d.state == x for d in state.decisions.values())} {x}"
                                 for x in ("decided", "futile", "at max", "continue")) + f"; {len(todo)} stage(s) "
                     f"to run of the {len(stages)} the most seeds would")
            if not todo:
                return
            self._run_pending(todo, done, number, len(stages))

    def _run_pending(self, pending: list[Stage], done: dict[str, StageRecord], number: dict[str, int],
                     total: int) -> None:
        import ray

        t0 = time.perf_counter()
        runner = self.stage_runner()
        for stage in pending:
            runner.prepare(stage)
        if pending:
            self.log(f"[ray-xt] features ready in {time.perf_counter() - t0:.0f}s "
                     f"({self.parts.features.misses} tokenised, {self.parts.features.hits} reused)")
        _ = self.parts.tracker.experiment_id  # create the store and experiment once, before concurrent writers start
        from ray_xt.mlflow_view import publish_runs_view

        self.log(f"[ray-xt] MLflow runs table: {publish_runs_view(self.parts.tracker)}")
        self.summary_run_id = self.parts.tracker.summary_run(self.cfg.name)
        self._report_progress()
        # Stage drivers prefer the study driver's node (the head on a cluster); if their node dies anyway, Ray
        # re-runs them (system failures only) and the re-run resumes the sweep from its experiment folder.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        remote = ray.remote(execute_stage).options(num_cpus=0, max_retries=3, scheduling_strategy=here)
        context = self.context()
        running: dict = {}
        failures: list[str] = []
        done_before = len(done)
        self.stop.in_loop = True
        try:
            self._schedule(pending, running, failures, done, number, total, remote, context, done_before)
        finally:
            self.stop.in_loop = False
        if failures:
            raise StageFailed(f"{len(failures)} stage(s) failed (finished stages are kept; re-run to continue):\n  - "
                              + "\n  - ".join(failures))

    def _schedule(self, pending: list[Stage], running: dict, failures: list[str], done: dict[str, StageRecord],
                  number: dict[str, int], total: int, remote, context, done_before: int) -> None:
        """Starts each stage once its upstream has finished, keeps what finishes; on a stop request, stops."""
        import ray

        while pending or running:
            if self.stop.requested:
                interrupted = self._stop_running(running, done, number, total)
                raise StudyInterrupted(self.stop.signum or signal.SIGINT, len(done), total, len(done) - done_before,
                                       interrupted)
            ready = [s for s in pending if all(d.key in done for d in s.depends_on)]
            while ready and not failures and len(running) < self.cfg.parallel_stages:
                stage = ready.pop(0)
                pending.remove(stage)
                self.log(f"[ray-xt] stage {number[stage.key]}/{total} {stage.label}: started "
                         f"({f'{samples_for(self.cfg, stage)} trials' if stage.sweeps else 'evaluation only'}"
                         f"{', warm' if stage.informants else ''})")
                ref = remote.remote(context, stage, time.perf_counter())
                running[ref] = (stage, time.perf_counter())
            if not running:
                break  # only stages whose upstream (or an informant) failed are left
            finished, _ = ray.wait(list(running), num_returns=1, timeout=1.0)  # a stop request is seen within 1 s
            if not finished:
                continue
            stage, t_start = running.pop(finished[0])
            try:
                record = ray.get(finished[0])
            except Exception as err:  # noqa: BLE001 - reported with the stage, the other stages still finish
                if self.stop.requested:
                    running[finished[0]] = (stage, t_start)  # stopped by the signal (Ctrl-C reaches the group too)
                    continue
                lines = [x for x in str(err).splitlines() if x.strip() and not x.startswith("(Background")]
                failures.append(f"{stage.label}: {type(err).__name__}: {(lines or [''])[-1][:300]}")
                self.log(f"[ray-xt] stage {number[stage.key]}/{total} FAILED: {failures[-1]}")
                continue
            self._keep(stage, record, t_start, done, number, total)

    def _stop_running(self, running: dict, done: dict[str, StageRecord], number: dict[str, int],
                      total: int) -> list[str]:
        """Cancels the running stages (their sweeps stop and keep their folders), keeps any that finish within the
        grace period; the labels of the others."""
        import ray

        for ref in list(running):
            ray.cancel(ref)  # a KeyboardInterrupt in the stage's task: Tune stops its trials
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        interrupted = []
        while running and time.monotonic() < deadline:
            finished, _ = ray.wait(list(running), num_returns=1, timeout=max(0.1, deadline - time.monotonic()))
            for ref in finished:
                stage, t_start = running.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception:  # noqa: BLE001 - cancelled: interrupted, resumed by the next run
                    interrupted.append(stage.label)
                    continue
                self._keep(stage, record, t_start, done, number, total)
        return interrupted + [stage.label for stage, _ in running.values()]

    def _keep(self, stage: Stage, record: StageRecord, t_start: float, done: dict[str, StageRecord],
              number: dict[str, int], total: int) -> None:
        """A finished stage: its record stored whole, its sweep pruned, its throughput learnt."""
        record["seconds"] = time.perf_counter() - t_start
        self.parts.store.put(stage, record)
        if stage.sweeps:
            from ray_xt.costs import ThroughputTable
            from ray_xt.retention import prune_finished_sweep

            # memoised now: its sweep keeps only the best model
            prune_finished_sweep(storage.join(self.parts.storage.location_of(self.parts.paths.tune), stage.name),
                                 record["sweep"]["best_model_dir"])
            # what trials measured refreshes `ray-xt plan`'s cost table
            ThroughputTable(storage.join(self.parts.storage.root, "throughput.json")).add(
                stage.scale, [t.get("examples_per_second") for t in record["sweep"].get("trials", [])])
        done[stage.key] = record
        self._log_done(number[stage.key], total, record)
        self._report_progress(stage, record)

    def _resume_lines(self, pending: list[Stage]) -> None:
        """What a re-run continues: the pending sweeps an earlier run left a Tune experiment folder for."""
        tune_root = self.parts.storage.location_of(self.parts.paths.tune)
        # one listing of the sweeps' folders, not a round trip per pending stage (object storage, ~600 stages)
        left = {folder.rstrip("/").rsplit("/", 1)[-1] for folder in storage.subfolders(tune_root)}
        resumed = [s.label for s in pending if s.sweeps and s.name in left]
        if resumed:
            self.log(f"[ray-xt] resuming {len(resumed)} interrupted sweep(s) from their last checkpoints: "
                     + "; ".join(resumed))

    def _planned_progress(self, stages: list[Stage], pending: list[Stage], done_before: int) -> StudyProgress:
        from ray_xt.costs import ThroughputTable, devices_per_trial, stage_device_hours

        table = ThroughputTable(storage.join(self.parts.storage.root, "throughput.json"))
        devices = {devices_per_trial(self.cfg, scale)[0] for scale in self.cfg.scales}
        return StudyProgress(len(stages), done_before, {s.key: stage_device_hours(self.cfg, s, table) for s in pending},
                             device=devices.pop() if len(devices) == 1 else "device")

    def _report_progress(self, stage: Stage | None = None, record: StageRecord | None = None) -> None:
        """The progress line on the console (what `make cluster-logs` shows on re-attaching) and the same numbers
        as metrics of the study's MLflow summary run."""
        from ray_xt.costs import devices_per_trial

        if stage is not None and record is not None:
            self.progress.stage_done(stage.key, measured_device_hours(record, devices_per_trial(self.cfg, stage.scale)[1]))
        self.log(self.progress.line())
        self.parts.tracker.log_metrics(self.summary_run_id, self.progress.metrics(), step=self.progress.done)

    def _driver_node_slots(self, sweeps: list[Stage]) -> tuple[str, int]:
        """The driver's node and how many of these stages' trials run on it at once."""
        import ray

        here = ray.get_runtime_context().get_node_id()
        node_cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == here), 0)
        per_trial = min(max(self.cfg.resources_for(s.scale)[0], 1e-3) for s in sweeps)
        return here, min(int(node_cpus // per_trial), self.cfg.parallel_stages * self.cfg.search.max_concurrent)

    def _start_trainer_pool(self, pending: list[Stage]):
        """The study's TrainerPool (ray_xt.trainer_hosts), with hosts for the driver node's trial slots already
        importing torch while features are prepared; None when no pending stage trains in hosts.

        Without hosts, a warm process per slot for the first sweeps' Tune trial actors (ray_xt.trial_workers;
        later sweeps find the ones their predecessors' actors asked for). With hosts, the first trials wait for
        a host's imports (~9 s of CPU) anyway, and processes prestarted now only slowed those down (measured:
        a study's first trial 3.4 s -> 5.4-5.8 s in bench/trial_fixed_cost.py)."""
        from ray_xt.trainer_hosts import pool_name, start_pool
        from ray_xt.trial_workers import prestart_for_tune

        sweeps = [s for s in pending if s.sweeps]
        if not sweeps:
            return None
        in_hosts = [s for s in sweeps if hosted(self.cfg, s.scale)]
        here, slots = self._driver_node_slots(in_hosts or sweeps)
        if not in_hosts:
            prestart_for_tune(here, slots)
            return None
        self.trainer_pool = pool_name()
        pool = start_pool(self.trainer_pool)
        if slots > 0:
            pool.warm.remote(here, slots)
        return pool

    def _log_done(self, i: int, n: int, record: StageRecord) -> None:
        best = record["sweep"]
        extra = ""
        if "zero_shot" in record:
            extra = " zero-shot " + " ".join(f"{k}={v:.3f}" for k, v in record["zero_shot"].items())
        lr = f"best lr={best['best_learning_rate']:.2e} dev={best['best_score']:.3f}" if best.get("best_learning_rate") \
            else "evaluated"
        self.log(f"[ray-xt] stage {i}/{n} {record['label']} done in {record['seconds']:.0f}s: {lr}{extra}")



