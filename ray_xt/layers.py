"""Each module's layer, declared once. A module imports only from its own layer and the layers below it
(``tests/test_layers.py`` checks every import, those inside functions too, and that ``docs/architecture.md``'s
table lists exactly these modules). A name is a module or a package (``families``: all of ``ray_xt.families``);
the most specific name decides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    job: str
    modules: tuple[str, ...]


LAYERS = (  # top to bottom
    Layer("entry", "parse options, refuse bad input, start Ray, print",
          ("cli", "cli_errors", "cluster_cli", "cluster_entry", "torch_check", "warmup")),
    Layer("study", "what runs, in which order, where results go",
          ("study", "records", "stages", "sweep", "retention", "tracking", "mlflow_view", "progress", "cluster_jobs",
           "report", "contrasts", "headline", "seed_checks", "figures", "paper", "costs", "budgets", "design",
           "validity", "warm_start", "sequential")),
    Layer("launch", "how a trial runs under Ray",
          ("trial", "sessions", "trainer_hosts", "trial_workers", "ray_internals", "local_ray", "tune_console",
           "preload", "micro.build")),
    Layer("loop", "one rank's training, no Ray", ("loop", "process_env", "deepspeed_ops")),
    Layer("models and data", "what a task is and how its data become tensors",
          ("families", "data", "formats", "sources", "snapshots", "prepare", "provenance", "problem_list",
           "translations", "translate", "corpus", "score", "micro")),
    Layer("settings", "typed settings, task definitions, paths and statistics",
          ("config", "scales", "storage", "tracking_uri", "stats", "group_sequential", "tasks", "micro.spec", "micro.codes",
           "layers")),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS (0 = top) of a module named relative to ``ray_xt`` (``micro.build``), None if
    undeclared."""
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for index, layer in enumerate(LAYERS):
        for name in layer.modules:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[0]):
                best = (len(name), index)
    return None if best is None else best[1]
