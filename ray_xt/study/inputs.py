"""A study's inputs made concrete before any stage runs: the data root (the micro world built, or real data
prepared and checked), each scale's pretrained model, and the data's manifest."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ray_xt.config import StudyConfig
from ray_xt.prepare import data_needs, prepare_data
from ray_xt.scales import SCALES, model_location
from ray_xt.tasks.registry import MLM_CORPUS


@dataclass
class Resolved:
    """What the config names, made concrete: data root, model paths, tokenizer, and the data's manifest."""

    data_root: Path
    model_paths: dict[str, str]  # pretrained model per scale; its folder (or hub id) also holds the tokenizer
    datasets: dict[str, dict] = field(default_factory=dict)  # "task/split/lang" -> {source, digest, rows}


def resolve_inputs(cfg: StudyConfig, use_ray: bool, progress: bool = True, prepared: list | None = None) -> Resolved:
    """``prepared``: the entries ``prepare_data`` already returned for this study (the CLI prepares real data
    before Ray starts), so the data are not fetched and checked a second time."""
    if cfg.data.source == "micro":
        from ray_xt.micro.build import build_micro
        from ray_xt.micro.world import WorldSpec

        m = cfg.micro
        spec = WorldSpec(
            seed=m.seed, languages=tuple(m.languages), corpus_sentences=m.corpus_sentences,
            train_size=m.train_size, dev_size=m.dev_size, test_size=m.test_size, translation_noise=m.translation_noise,
            # only the files this study reads: another task set shares the corpus, tokenizer and models
            tasks=tuple(sorted({t for t, _, _ in data_needs(cfg) if t != MLM_CORPUS})),  # the mlm text: its corpus
        )
        recipes = {s: recipe for s in cfg.scales if (recipe := SCALES[s].micro) is not None}  # micro: all micro
        pretrain = {s: replace(recipe, steps=m.pretrain_steps) if m.pretrain_steps else recipe
                    for s, recipe in recipes.items()}
        world = build_micro(spec, m.vocab_size, pretrain, m.cache_dir, use_ray=use_ray, progress=progress)
        return Resolved(world.root, {s: str(world.model_dirs[s]) for s in cfg.scales},
                        manifest_datasets(prepare_data(cfg, root=world.root)))
    entries = prepared if prepared is not None else prepare_data(cfg)
    return Resolved(cfg.data.data_root(), {s: model_location(s, cfg.model_paths.get(s)) for s in cfg.scales},
                    manifest_datasets(entries))


def manifest_datasets(entries) -> dict[str, dict]:
    return {f"{e.task}/{e.split}/{e.lang}": {"source": e.source, "digest": e.digest, "rows": e.rows} for e in entries}
