"""XLM-R XL's code paths on CPU: a micro scale with XL's architecture (pre-LayerNorm, transformers' XLMRobertaXL
classes) trained as the xlmr-xl scale is — a 2-rank Ray Train worker group under ZeRO-3 with the optimizer
offloaded (DeepSpeedCPUAdam) — through training, dev evaluation, zero-shot evaluation and retrieval."""

import json
from pathlib import Path

import pytest

from conftest import tiny_study
from ray_xt.config import parse_study
from ray_xt.scales import SCALES
from ray_xt.study import StudyDriver

pytestmark = [pytest.mark.integration]


def test_the_micro_xl_scale_is_trained_as_xlmr_xl():
    xl, micro = SCALES["xlmr-xl"], SCALES["micro-xl"]
    assert micro.micro.architecture == "xlm-roberta-xl"
    assert (micro.workers_per_trial > 1, micro.zero_stage, micro.offload_optimizer) == \
        (xl.workers_per_trial > 1, xl.zero_stage, xl.offload_optimizer) == (True, 3, True)


@pytest.mark.slow  # ~2 minutes, and DeepSpeedCPUAdam's one-time build (~1 minute) on a fresh machine
def test_xl_architecture_trains_evaluates_and_retrieves_in_a_zero3_worker_group(tmp_path, micro_cache, ray_local):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    cfg = parse_study(tiny_study(tmp_path, micro_cache, scales=["micro-xl"],
                                 target={"tasks": ["pawsx", "udpos", "tatoeba"]}, trial={"zero_stage": None},
                                 search={"num_samples": 1, "max_concurrent": 1}, scheduler={"enabled": False}))
    resolved = cfg.resolved_trial("pawsx", "micro-xl")
    assert (resolved.workers, resolved.zero_stage, resolved.offload_optimizer) == (2, 3, True)
    records = {r["stage"]["task"]: r for r in StudyDriver(cfg, log=lambda m: None).run(progress=False)}

    for task, model_class in (("pawsx", AutoModelForSequenceClassification),
                              ("udpos", AutoModelForTokenClassification)):
        record = records[task]
        ckpt = Path(record["sweep"]["best_model_dir"]).parent
        assert ckpt.parent.name == "train"  # the worker group's Ray Train run
        fixed = json.loads((ckpt / "trial_config.json").read_text())["fixed"]
        assert (fixed["workers"], fixed["zero_stage"], fixed["offload_optimizer"]) == (2, 3, True)
        # the ZeRO-3 partitions were gathered into a whole XL model
        model = model_class.from_pretrained(str(ckpt / "model"))
        assert type(model).__name__.startswith("XLMRobertaXL"), type(model).__name__
        assert float(model.get_input_embeddings().weight.abs().sum()) > 0
        assert 0 <= record["sweep"]["best_score"] <= 1  # dev evaluation under ZeRO-3
        assert set(record["zero_shot"]) == {"en", "qca", "qso"}  # zero-shot on the gathered checkpoint
    tatoeba = records["tatoeba"]["zero_shot"]  # retrieval straight from the pretrained XL encoder
    assert set(tatoeba) == {"qca", "qso"} and all(0 <= v <= 1 for v in tatoeba.values())
