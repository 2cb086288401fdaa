"""The training loop without Ray (ray_xt.loop): one trial on a micro scale with an in-memory session, in a plain
process; and the package's import graph, which has no circle."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, tiny_study
from ray_xt.loop import Schedule

TRAIN = r"""
import json, sys
from ray_xt.loop import Hyper, MemorySession, TaskInputs, TrialSpec, train
from ray_xt.process_env import prepare_process

args = json.loads(sys.argv[1])
prepare_process(1)
spec = TrialSpec(model_path=args["model"], tokenizer_path=args["model"],
                 tasks=(TaskInputs("pawsx", tuple(args["labels"]), args["train"], args["dev"]),),
                 epochs=2, batch_size=16, evals_per_epoch=2, warmup_ratio=0.1, weight_decay=0.01, zero_stage=0,
                 bf16=False, cpus=1, seed=0, stage_key="loop-test", git_revision="test")
session = MemorySession()
train(spec, Hyper(learning_rate=3e-4), session)
print(json.dumps({"reports": session.reports, "checkpoints": session.checkpoints,
                  "ray_imported": any(m == "ray" or m.startswith("ray.") for m in sys.modules)}))
"""

# three trials in one process, as a reused Tune actor or a warm trainer host runs them: after each, nothing of it
# may stay alive (on a GPU the next trial would start beside the last one's weights and optimizer states)
THREE_TRIALS = r"""
import gc, json, sys
import deepspeed, torch
from ray_xt.loop import Hyper, MemorySession, TaskInputs, TrialSpec, train
from ray_xt.process_env import prepare_process

args = json.loads(sys.argv[1])
prepare_process(1)
spec = TrialSpec(model_path=args["model"], tokenizer_path=args["model"],
                 tasks=(TaskInputs("pawsx", tuple(args["labels"]), args["train"], args["dev"]),),
                 epochs=1, batch_size=16, evals_per_epoch=1, warmup_ratio=0.1, weight_decay=0.01,
                 zero_stage=args["zero_stage"], bf16=False, cpus=1, seed=0, stage_key="leak-test", git_revision="test")

def alive():
    gc.collect()
    objects = gc.get_objects()
    return {"engines": sum(isinstance(o, deepspeed.DeepSpeedEngine) for o in objects),
            "parameters": sum(o.numel() for o in objects if isinstance(o, torch.nn.Parameter))}

before = alive()
after = []
for lr in (3e-4, 1e-4, 5e-4):
    train(spec, Hyper(learning_rate=lr), MemorySession())
    after.append(alive())
print(json.dumps({"before": before, "after": after}))
"""


def test_schedule_is_the_step_arithmetic_the_study_and_the_loop_share():
    s = Schedule.of(n_train=100, batch_size=16, epochs=2, evals_per_epoch=2)
    assert (s.steps_per_epoch, s.eval_every, s.total_steps, s.reports) == (7, 3, 14, 5)
    assert [step for step in range(1, 15) if s.evaluates_after(step)] == [3, 6, 9, 12, 14]
    assert Schedule.of(3, 16, 0.1, 4).total_steps == 1  # at least one step, one report


def pawsx_inputs(tmp_path: Path, micro_cache: Path) -> dict:
    """The micro-s model, PAWS-X labels and tokenised train/dev features of a tiny study, as the scripts take them."""
    from ray_xt.config import parse_study
    from ray_xt.data import FeatureCache
    from ray_xt.families import family_of
    from ray_xt.study import resolve_inputs
    from ray_xt.tasks.registry import TASKS

    cfg = parse_study(tiny_study(tmp_path, micro_cache))
    resolved = resolve_inputs(cfg, use_ray=False, progress=False)
    model = resolved.model_paths["micro-s"]
    task = TASKS["pawsx"]
    labels = family_of(task).label_space(resolved.data_root, task)
    cache = FeatureCache(tmp_path / "features")
    features = {split: str(cache.features(resolved.data_root, task, split, ["en"], model, max_len=48, labels=labels))
                for split in ("train", "dev")}
    return {"model": model, "labels": labels, **features}


@pytest.mark.timeout(600)
def test_train_runs_a_micro_trial_in_a_plain_process_without_ray(tmp_path, micro_cache):
    args = pawsx_inputs(tmp_path, micro_cache)
    out = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(args)], capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    reports = result["reports"]
    n_train = 160  # tiny_study's train_size
    schedule = Schedule.of(n_train, 16, 2, 2)
    assert [r["step"] for r in reports] == [s for s in range(1, schedule.total_steps + 1) if schedule.evaluates_after(s)]
    assert [r["final"] for r in reports] == [False] * (len(reports) - 1) + [True]
    assert result["checkpoints"] == [f"checkpoint_{r['step']:08d}" for r in reports]
    assert all(0.0 <= r["score"] <= 1.0 and r["train_loss"] > 0 for r in reports)
    assert not result["ray_imported"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("zero_stage", [0, 2])
def test_a_trial_gives_back_its_engine_and_parameters(tmp_path, micro_cache, zero_stage):
    args = {**pawsx_inputs(tmp_path, micro_cache), "zero_stage": zero_stage}
    out = subprocess.run([sys.executable, "-c", THREE_TRIALS, json.dumps(args)], capture_output=True, text=True,
                         timeout=540)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [a["engines"] for a in result["after"]] == [0, 0, 0], result
    assert [a["parameters"] for a in result["after"]] == [result["before"]["parameters"]] * 3, result


from test_layers import imports_of as _imports  # noqa: E402 - one import-graph reader for the structure tests


def test_the_package_import_graph_has_no_circle():
    """Every import, inside functions too: a circle held together by function-level imports is still a circle."""
    import graphlib

    package = ROOT / "ray_xt"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph = {name: {m for m in _imports(path, "ray_xt") if m in modules and m != name}
             for name, path in modules.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle


def test_the_loop_and_process_environment_import_no_launcher():
    for module in [*sorted((ROOT / "ray_xt" / "loop").glob("*.py")), ROOT / "ray_xt" / "process_env.py"]:
        imported = _imports(module, "ray_xt") | _imports(module, "ray")
        assert not {m for m in imported if m.split(".")[0] == "ray"}, (module, imported)
        launchers = {"ray_xt.trial", "ray_xt.sessions", "ray_xt.trainer_hosts", "ray_xt.trial_workers", "ray_xt.sweep",
                     "ray_xt.study"}
        assert not imported & launchers, (module, imported & launchers)
