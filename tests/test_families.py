"""The five task families on the micro world's files with a tiny random XLM-R: featurise -> head -> predict -> metric."""

import json
import math

import numpy as np
import pytest

from ray_xt.data import FeatureCache, load_features
from ray_xt.families import family_of
from ray_xt.families.retrieval import Retrieval, best_threshold, nearest_neighbours
from ray_xt.families.span_qa import best_span
from ray_xt.micro.build import build_world
from ray_xt.micro.world import WorldSpec
from ray_xt.tasks.registry import TASKS

WORLD = WorldSpec(seed=5, languages=("en", "qca", "qso"), corpus_sentences=300, train_size=40, dev_size=12,
                  test_size=12)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

    tmp = tmp_path_factory.mktemp("families")
    root, tok_dir = build_world(WORLD, 500, tmp)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1)
    XLMRobertaForMaskedLM(config).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    return {"root": root, "tok": tok, "tok_dir": str(tok_dir), "model": str(tmp / "model"),
            "cache": FeatureCache(tmp / "features")}


def _features(world, task_name, split, lang, max_len=48, stride=16):
    task = TASKS[task_name]
    labels = family_of(task).label_space(world["root"], task)
    path = world["cache"].features(world["root"], task, split, [lang], world["tok_dir"], max_len, stride=stride,
                                   labels=labels)
    return (task, labels, *load_features(path))


@pytest.mark.parametrize("task_name,split", [
    ("xnli", "dev"), ("udpos", "dev"), ("panx", "dev"), ("ccg", "dev"), ("squad", "train"), ("tydiqa", "dev"),
    ("hellaswag", "dev"), ("cosmosqa", "dev"), ("socialiqa", "dev"), ("commonsenseqa", "dev"),
])
def test_trainable_family_trains_and_evaluates(world, task_name, split):
    import torch

    task, labels, features, examples, _ = _features(world, task_name, split, "qso")
    family = family_of(task)
    model = family.load_model(world["model"], len(labels), fresh_head=True, labels=labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = family.batch(features, list(range(min(4, len(features["input_ids"])))), world["tok"].pad_token_id)
    loss = model(**batch).loss
    assert math.isfinite(loss.item())
    loss.backward()
    optimizer.step()
    evaluation = family.evaluate(model, features, examples, world["tok"].pad_token_id, task, "qso")
    assert 0.0 <= evaluation.score <= 1.0
    assert evaluation.metrics
    if task.family == "span_qa":
        assert set(evaluation.submission) == {e["id"] for e in examples}
    elif task.family == "tagging":
        assert len([x for x in evaluation.submission if x]) == sum(len(e["tokens"]) for e in examples)
    else:
        assert len(evaluation.submission) == len(examples)


def test_tagging_splits_long_sentences_without_losing_words(world):
    task, labels, features, examples, _ = _features(world, "udpos", "dev", "qso", max_len=8)
    assert max(len(x) for x in features["input_ids"]) <= 8
    assert len(features["input_ids"]) > len(examples)  # several windows per sentence
    covered = {}
    for ex, first, positions, labs in zip(features["example"], features["first_word"], features["word_positions"],
                                          features["labels"]):
        for k, pos in enumerate(positions):
            covered[(ex, first + k)] = labs[pos]
    assert len(covered) == sum(len(e["tokens"]) for e in examples)
    # the first subword of each word carries its gold tag, every other token is ignored
    assert all(labels[covered[(i, w)]] == tag for i, e in enumerate(examples) for w, tag in enumerate(e["tags"]))
    assert sum(1 for labs in features["labels"] for v in labs if v != -100) == len(covered)


def test_span_qa_windows_point_at_the_answer(world):
    task, _, features, examples, _ = _features(world, "xquad", "test", "qso", max_len=32, stride=8)
    assert len(features["input_ids"]) > len(examples)  # doc stride made several windows
    found = set()
    for ex, start, end, offsets in zip(features["example"], features["start"], features["end"], features["offsets"]):
        if start == 0:
            continue  # this window does not hold the answer
        answer = examples[ex]["answers"][0]
        assert examples[ex]["context"][offsets[start][0]:offsets[end][1]] == answer["text"]
        found.add(ex)
    assert len(found) == len(examples)


def test_best_span_respects_context_and_order():
    offsets = [[-1, -1], [0, 3], [4, 7], [8, 11]]
    starts = np.array([9.0, 1.0, 5.0, 0.0])
    ends = np.array([9.0, 4.0, 0.0, 3.0])
    # <s> (index 0) scores highest but is not context; end before start is invalid
    assert best_span(starts, ends, offsets) == (8.0, 4, 11)


def test_retrieval_finds_identical_sentences_and_margin_threshold(world, tmp_path):
    from transformers import AutoModel

    sentences = (world["root"].parent / "corpus" / "qso.txt").read_text(encoding="utf-8").splitlines()[:20]
    sentences = list(dict.fromkeys(sentences))
    model = AutoModel.from_pretrained(world["model"])
    retrieval = Retrieval(layer=1)
    ids = world["tok"](sentences + sentences[::-1])["input_ids"]
    features = {"input_ids": ids, "side": [0] * len(sentences) + [1] * len(sentences)}
    n = len(sentences)
    examples = ([{"side": "src", "id": str(i), "text": s, "gold": str(n - 1 - i)} for i, s in enumerate(sentences)]
                + [{"side": "en", "id": str(i), "text": s, "gold": ""} for i, s in enumerate(sentences[::-1])])
    evaluation = retrieval.evaluate(model, features, examples, world["tok"].pad_token_id, TASKS["tatoeba"], "qso")
    assert evaluation.score == 1.0  # an untrained encoder still maps a sentence to itself

    src = [{"id": "a"}, {"id": "b"}]
    en = [{"id": "x"}, {"id": "y"}]
    # candidates (score, src, en): a-x is gold, b-y is not -> keep only the first: threshold = its score
    assert best_threshold([(1.0, 0, 0), (0.5, 1, 1)], src, en, {("a", "x")}) == 1.0


@pytest.mark.parametrize("k", [1, 4])
def test_blockwise_nearest_neighbours_and_margins_equal_the_dense_computation(k):
    """Blocks smaller than both sides (merging across row and column blocks), against the n x m matrix."""
    rng = np.random.default_rng(k)
    src, en = rng.normal(size=(37, 16)), rng.normal(size=(53, 16))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    en /= np.linalg.norm(en, axis=1, keepdims=True)
    found = nearest_neighbours(src.astype(np.float32), en.astype(np.float32), k, rows=8, cols=10)
    sims = src @ en.T
    order = np.argsort(-sims, axis=1)[:, :k]
    assert (found.src_index == order).all()
    assert np.allclose(found.src_sim, np.take_along_axis(sims, order, 1), atol=1e-5)
    assert np.allclose(found.en_mean, -np.sort(-sims, axis=0)[:k].mean(0), atol=1e-5)
    # the ratio margin of each source's k candidates (XTREME's utils_retrieve.py), its best kept
    margin = np.take_along_axis(sims, order, 1) / ((sims[np.arange(37)[:, None], order].mean(1, keepdims=True)
                                                    + (-np.sort(-sims, axis=0)[:k].mean(0))[order]) / 2)
    best, score = found.best_by_margin()
    assert (best == order[np.arange(37), margin.argmax(1)]).all()
    assert np.allclose(score, margin.max(1), atol=1e-5)


@pytest.mark.parametrize("kind", ["xlm-r", "xlm-r-xl"])
def test_retrieval_embeds_the_layers_hidden_states_running_only_the_layers_below_it(world, kind):
    import torch
    from transformers import AutoModel, XLMRobertaXLConfig, XLMRobertaXLModel

    if kind == "xlm-r":  # 2 layers, pooled at layer 1: the layer above need not run
        model, truncated = AutoModel.from_pretrained(world["model"]), True
    else:  # XL's encoder ends in a LayerNorm that layer 1's states never see: it runs whole
        model, truncated = XLMRobertaXLModel(XLMRobertaXLConfig(
            vocab_size=len(world["tok"]), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=130, pad_token_id=1)).eval(), False
    ids = world["tok"](["a dog sees the cat", "the cat"])["input_ids"]
    ran = []
    hooks = [block.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, block in enumerate(model.encoder.layer)]
    embedded = Retrieval(layer=1).embed(model, ids, world["tok"].pad_token_id)
    assert set(ran) == ({0} if truncated else {0, 1})
    assert len(model.encoder.layer) == 2  # the encoder is whole again afterwards
    for hook in hooks:
        hook.remove()
    with torch.no_grad():  # the whole encoder's layer-1 states, pooled by hand
        pad_id = world["tok"].pad_token_id
        batch = torch.tensor([ids[0], ids[1] + [pad_id] * (len(ids[0]) - len(ids[1]))])
        mask = (batch != pad_id).long()
        hidden = model(input_ids=batch, attention_mask=mask, output_hidden_states=True).hidden_states[1]
        pooled = ((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(embedded, pooled, atol=1e-5)


def _tiny_xlmr(**overrides):
    """A 3-layer random XLM-R config and a padded batch of four rows of different lengths."""
    import torch
    from transformers import XLMRobertaConfig

    from ray_xt.families.base import padded_inputs

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=80, num_labels=3, **overrides)
    return config, padded_inputs([[0, *torch.randint(5, 120, (n,)).tolist(), 2] for n in (3, 20, 11, 7)], 1)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_first_token_shortcut_gives_the_full_models_logits(attention):
    """Pair and multiple-choice evaluation run the last layer for the first token only; the logits must be the
    full forward's (rows of different lengths, so padding is masked), and other models take the full path."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMultipleChoice, XLMRobertaForSequenceClassification

    from ray_xt.families.first_token import _encoder_of, classification_logits, multiple_choice_logits

    config, inputs = _tiny_xlmr(attn_implementation=attention)
    with torch.inference_mode():
        model = XLMRobertaForSequenceClassification(config).eval()
        for name, param in model.named_parameters():  # HF initialises biases to 0; every bias must count
            if name.endswith("bias"):
                param.copy_(torch.randn_like(param))
        full = model(**inputs).logits
        torch.testing.assert_close(classification_logits(model, **inputs), full, rtol=1e-5, atol=1e-6)
        choice_model = XLMRobertaForMultipleChoice(config).eval()
        grouped = {k: v.view(2, 2, -1) for k, v in inputs.items()}
        full = choice_model(**grouped).logits
        assert full.shape == (2, 2)
        torch.testing.assert_close(multiple_choice_logits(choice_model, **grouped), full, rtol=1e-5, atol=1e-6)
    # a model whose last layer cannot be cut this way (chunked feed-forward) is run whole
    chunked = XLMRobertaForSequenceClassification(XLMRobertaConfig(**{**config.to_dict(), "chunk_size_feed_forward": 2}))
    assert _encoder_of(chunked) is None
    with torch.inference_mode():
        torch.testing.assert_close(classification_logits(chunked.eval(), **inputs), chunked(**inputs).logits)


def test_xlmr_xl_takes_the_full_forward_which_the_cut_would_get_wrong():
    """XLM-R XL is pre-LayerNorm: the cut, applied to it, skips the last layer's attention LayerNorm and the
    encoder's final LayerNorm and gives other logits; so XL classifies through the full forward."""
    import torch
    from transformers import XLMRobertaXLConfig, XLMRobertaXLForSequenceClassification

    from ray_xt.families.first_token import _encoder_of, classification_logits, first_token_state, first_token_training

    _, inputs = _tiny_xlmr()
    config = XLMRobertaXLConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=80, num_labels=3)
    with torch.inference_mode():
        model = XLMRobertaXLForSequenceClassification(config).eval()
        for name, param in model.named_parameters():  # LayerNorms away from identity, so skipping one shows
            if "LayerNorm" in name or "layer_norm" in name:
                param.copy_(torch.randn_like(param))
        full = model(**inputs).logits
        assert _encoder_of(model) is None and first_token_training(model, classification_logits) is model
        torch.testing.assert_close(classification_logits(model, **inputs), full)
        cut = model.classifier(first_token_state(model.roberta, **inputs))  # what the cut would have given
        assert not torch.allclose(cut, full, atol=1e-3)


ZERO3_EVALUATION = r"""
import json, os
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29613", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed, torch
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification
from ray_xt.families.base import padded_inputs
from ray_xt.families.first_token import _encoder_of, classification_logits
from ray_xt.loop import deepspeed_config

torch.manual_seed(0)
config = XLMRobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=80, num_labels=3)
inputs = padded_inputs([[0, *torch.randint(5, 120, (n,)).tolist(), 2] for n in (3, 20, 11, 7)], 1)
model = XLMRobertaForSequenceClassification(config).eval()
with torch.inference_mode():
    whole = model(**inputs).logits
engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters()),
                                  config=deepspeed_config(4, 3, False))
engine.eval()
with torch.inference_mode():
    logits = classification_logits(engine.module, **inputs)
print(json.dumps({"cut": _encoder_of(engine.module) is not None, "error": (logits - whole).abs().max().item()}))
"""


ZERO3_STATE = r"""
import json, os
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29614", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed, torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM
from ray_xt.loop import deepspeed_config, gathered_state_dict

torch.manual_seed(0)
config = XLMRobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=80)
model = XLMRobertaForMaskedLM(config)  # the MLM decoder is tied to the word embeddings
whole = {k: v.detach().clone() for k, v in model.state_dict().items()}
engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters()),
                                  config=deepspeed_config(4, 3, False))
partitioned = min(p.numel() for p in engine.module.parameters()) == 0
state = gathered_state_dict(engine.module, 0)
reference = engine._zero3_consolidated_16bit_state_dict()  # DeepSpeed's private way, as the test's yardstick
print(json.dumps({
    "partitioned": partitioned,
    "same_keys": sorted(state) == sorted(whole),
    "equal_to_model": all(torch.equal(state[k], whole[k]) for k in whole),
    "equal_to_deepspeed": all(torch.equal(state[k], reference[k]) for k in reference),
    "tied": state["lm_head.decoder.weight"] is state["roberta.embeddings.word_embeddings.weight"]
            if "lm_head.decoder.weight" in state else "untied-in-state-dict",
}))
"""


@pytest.mark.timeout(300)
def test_a_zero3_model_is_gathered_whole_through_deepspeeds_public_api():
    """Checkpoints of ZeRO-3 trials: the full state dict, gathered one module at a time with GatheredParameters,
    equals the model's own weights (and what DeepSpeed's private consolidation gives)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ZERO3_STATE], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["partitioned"] and result["same_keys"] and result["equal_to_model"], result
    assert result["equal_to_deepspeed"] and result["tied"] in (True, "untied-in-state-dict"), result


@pytest.mark.timeout(300)
def test_under_zero3_evaluation_takes_the_full_forward():
    """ZeRO-3 partitions parameters: read outside their module's forward (as the cut's one-query attention reads
    the last layer's key and value weights) they are empty. Such a model is evaluated through the full forward."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ZERO3_EVALUATION], capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cut"] is False and result["error"] < 1e-5, result


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_first_token_training_gives_the_full_models_loss_gradients_and_names(tmp_path, attention):
    """Training through the cut, under both attention implementations the project runs (sdpa, transformers'
    default, and eager): the HF model's loss and gradients with the installed transformers (dropout off, so both
    are deterministic), the same parameter names and state dict (DeepSpeed checkpoints), and save_pretrained
    writes the HF model."""
    import torch
    from transformers import XLMRobertaForMultipleChoice, XLMRobertaForSequenceClassification

    from ray_xt.families.first_token import classification_logits, first_token_training, multiple_choice_logits

    config, inputs = _tiny_xlmr(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                attn_implementation=attention)
    cases = [
        (XLMRobertaForSequenceClassification(config), classification_logits, inputs, torch.tensor([0, 2, 1, 2])),
        (XLMRobertaForMultipleChoice(config), multiple_choice_logits, {k: v.view(2, 2, -1) for k, v in inputs.items()},
         torch.tensor([1, 0])),
    ]
    for model, logits, batch, labels in cases:
        model.train()
        full = model(**batch, labels=labels).loss
        full.backward()
        expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        cut = first_token_training(model, logits)
        assert cut is not model
        assert [n for n, _ in cut.named_parameters()] == [n for n, _ in model.named_parameters()]
        assert cut.state_dict().keys() == model.state_dict().keys()
        loss = cut(**batch, labels=labels).loss
        loss.backward()
        torch.testing.assert_close(loss, full)
        # the last layer's non-first tokens feed nothing now, so every gradient the full model had is there
        for name, grad in expected.items():
            torch.testing.assert_close(dict(cut.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)
    cut.save_pretrained(str(tmp_path / "saved"))  # the last case: the multiple-choice model
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == ["XLMRobertaForMultipleChoice"]
    reloaded = XLMRobertaForMultipleChoice.from_pretrained(str(tmp_path / "saved"))
    torch.testing.assert_close(reloaded.classifier.weight, model.classifier.weight)


def test_a_fresh_head_is_drawn_anew_even_where_the_upstream_checkpoint_has_one_of_the_same_shape(tmp_path):
    """QQP (2 labels) before PAWS-X (2 labels): the target trains a new head on the intermediate encoder, as the
    protocol says; the encoder, and an MLM decoder tied to its word embeddings, are the checkpoint's."""
    import torch
    from transformers import XLMRobertaForSequenceClassification

    from ray_xt.families import family_of
    from ray_xt.tasks.registry import MLM_CORPUS, TASKS

    config, _ = _tiny_xlmr()
    config.num_labels = 2
    upstream = XLMRobertaForSequenceClassification(config)
    with torch.no_grad():
        for param in upstream.classifier.parameters():
            param.fill_(0.5)
    upstream.save_pretrained(str(tmp_path / "qqp"))
    target = family_of(TASKS["pawsx"]).load_model(str(tmp_path / "qqp"), 2, fresh_head=True, labels=["0", "1"])
    head = dict(target.classifier.named_parameters())
    assert not any(bool((p == 0.5).any()) for p in head.values()), "the upstream head carried over"
    assert bool((head["dense.bias"] == 0).all()) and 0.5 * config.initializer_range < float(
        head["out_proj.weight"].std()) < 2 * config.initializer_range
    for name, param in upstream.roberta.state_dict().items():
        torch.testing.assert_close(target.roberta.state_dict()[name], param)
    mlm = family_of(TASKS[MLM_CORPUS]).load_model(str(tmp_path / "qqp"), 0, fresh_head=True)
    assert mlm.lm_head.decoder.weight is mlm.roberta.embeddings.word_embeddings.weight
    torch.testing.assert_close(mlm.roberta.embeddings.word_embeddings.weight,
                               upstream.roberta.embeddings.word_embeddings.weight)
