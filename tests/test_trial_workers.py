"""Warm processes for Tune's trial actors (ray_xt.trial_workers): on a real local Ray, a sweep's trial actor lands
in a worker prestarted for it, which had imported Tune before the sweep began, and each trial actor leaves one
behind for the next sweep."""

import os
import time

import pytest

from conftest import tune_env_workers
from ray_xt.trial_workers import TUNE_ACTOR_MARK, merged_runtime_env, serialized, tune_actor_runtime_env


def test_child_runtime_env_merges_over_the_parent_as_rays_core_worker_does():
    parent = {"env_vars": {"A": "1", "B": "2"}, "worker_process_setup_hook": "m.f", "pip": ["x"]}
    child = {"env_vars": {"B": "3", "C": "4"}, "pip": ["y"]}
    assert merged_runtime_env(parent, child) == {
        "env_vars": {"A": "1", "B": "3", "C": "4"}, "worker_process_setup_hook": "m.f", "pip": ["y"]}
    assert merged_runtime_env({}, child) == child
    # nlohmann::json's dump: sorted keys, no spaces (the text Ray hashes to match workers to actors)
    assert serialized({"b": {"y": "1", "x": "é"}, "a": "2"}) == '{"a":"2","b":{"x":"é","y":"1"}}'


def test_the_mark_the_setup_hook_looks_for_is_what_tune_gives_its_actors():
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS

    assert DEFAULT_ENV_VARS == dict([TUNE_ACTOR_MARK])
    env = tune_actor_runtime_env({"env_vars": {"X": "1"}}, environ={"RAY_CHDIR_TO_TRIAL_DIR": "0", "OTHER": "1"})
    assert env == {"env_vars": {"X": "1", TUNE_ACTOR_MARK[0]: TUNE_ACTOR_MARK[1], "RAY_CHDIR_TO_TRIAL_DIR": "0"}}


def _wait_for_new(before: set[int], timeout: float = 60.0) -> set[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = tune_env_workers() - before
        if new:
            return new
        time.sleep(0.2)
    raise AssertionError("no worker was started in Tune's trial-actor environment")


def _sweep(storage, name: str) -> dict:
    """A one-trial Tune experiment whose trial reports its process, when that process imported Tune, and
    whether it asked for its replacement (as ray_xt.trial.run_trial does once its trial is under way)."""
    from ray import tune

    def trainable(config):
        import ray_xt.trial_workers as tw

        replaced = tw.replace_this_worker()
        tune.report({"pid": os.getpid(), "warmed_at": tw.warmed_at or 0.0, "replaced": replaced})

    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), tune_config=tune.TuneConfig(num_samples=1),
                       run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0))
    started = time.time()
    result = tuner.fit()[0]
    assert result.error is None, result.error
    return {**result.metrics, "started": started}


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_sweeps_trial_actor_takes_the_worker_prestarted_for_it_and_leaves_one_for_the_next(ray_local, tmp_path):
    from ray_xt.trial_workers import prestart_for_tune

    node = ray_local.get_runtime_context().get_node_id()
    before = tune_env_workers()  # warm ones earlier tests' trial actors left, if any
    assert prestart_for_tune(node, 1)
    _wait_for_new(before)
    time.sleep(5)  # let it import Tune (setup_worker) before the sweep asks for an actor

    warm = tune_env_workers()
    first = _sweep(tmp_path, "first")
    assert first["pid"] in warm  # a process that was waiting, not one started for the actor
    assert 0 < first["warmed_at"] < first["started"]  # Tune was imported before the sweep began
    assert first["replaced"] is True

    _wait_for_new(warm)  # the first trial's replacement
    time.sleep(5)
    warm = tune_env_workers()
    second = _sweep(tmp_path, "second")
    assert second["pid"] in warm
    assert 0 < second["warmed_at"] < second["started"]


@pytest.mark.integration
def test_a_node_that_cannot_be_asked_costs_nothing_but_the_warm_start(ray_local, capsys):
    from ray_xt.trial_workers import prestart_for_tune

    assert prestart_for_tune("0" * 56, 1) is False
    assert "could not prestart trial-actor workers" in capsys.readouterr().out
