"""The mlm condition's pieces: static masking, and the study-file rules for its text."""

import pytest

from ray_xt.config import ConfigError, parse_study
from ray_xt.families.masked_lm import IGNORE, MaskedLM


class Tok:
    """A character tokenizer with XLM-R's special ids (0 <s>, 1 <pad>, 2 </s>, 3 <unk>, 4 <mask>)."""

    all_special_ids = [0, 1, 2, 3, 4]
    mask_token_id = 4

    def __len__(self):
        return 100

    def __call__(self, texts, truncation=True, max_length=512):
        return {"input_ids": [[0] + [10 + (ord(c) % 80) for c in t][: max_length - 2] + [2] for t in texts]}


def test_static_masking_masks_about_15_percent_of_real_tokens_and_labels_only_those():
    examples = [{"text": "abcdefghij" * 20} for _ in range(50)]
    features = MaskedLM().featurize(examples, Tok(), 512, 0, [])
    again = MaskedLM().featurize(examples, Tok(), 512, 0, [])
    assert features == again  # deterministic: every stage sees the same masks
    real = labelled = masked = 0
    for ids, labels, original in zip(features["input_ids"], features["labels"], Tok()([e["text"] for e in examples])["input_ids"]):
        assert labels[0] == IGNORE and labels[-1] == IGNORE  # never <s> or </s>
        for token, label, source in zip(ids, labels, original):
            real += source not in Tok.all_special_ids
            if label != IGNORE:
                labelled += 1
                assert label == source
                masked += token == Tok.mask_token_id
            else:
                assert token == source
    assert 0.13 < labelled / real < 0.17 and 0.75 < masked / labelled < 0.85


def _study(**intermediate):
    return {"name": "x", "data": {"source": "hub"}, "scales": ["xlmr-base"],
            "intermediate": {"tasks": ["mnli"], "conditions": ["en", "mlm"], **intermediate},
            "target": {"tasks": ["xnli"], "languages": ["en", "de"]}}


def test_the_mlm_condition_on_real_data_names_its_corpus():
    with pytest.raises(ConfigError, match="intermediate.mlm_corpus: required for the 'mlm' condition on real data"):
        parse_study(_study())
    cfg = parse_study(_study(mlm_corpus={"dataset": "wikimedia/wikipedia", "config": "20231101.{lang}"}))
    assert cfg.intermediate.mlm_corpus.column == "text"
    with pytest.raises(ConfigError, match="the micro world's own corpora are used"):
        parse_study({**_study(mlm_corpus={"dataset": "d", "config": "{lang}"}), "data": {"source": "micro"},
                     "scales": ["micro-s"], "target": {"tasks": ["xnli"]}})
