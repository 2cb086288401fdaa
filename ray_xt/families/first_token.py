"""Classification heads read only the first token (<s>), so the last layer runs for that token alone.

Sequence classification (XNLI, PAWS-X, ...) and multiple choice both classify the last layer's first-token
state. Every layer but the last must still run on all tokens (the first token attends to them), but the last
layer's attention query, attention output and feed-forward are needed for one token per row instead of all of
them: the same logits for 1/L less compute (a quarter of a 4-layer micro scale's encoder; a twelfth of
XLM-R base's). Exact up to float rounding (tested against the full forward, predictions identical).
Evaluation uses the logits functions; training uses ``FirstTokenTraining`` (same loss and gradients, and
the same dropout: the last layer's attention dropout applies to the one query row that is kept).

Taken only where tests pin it to the full forward (tests/test_families.py): XLM-R's post-LayerNorm encoder with
its parameters whole. Everything else runs the full forward: XLM-R XL and other pre-LayerNorm encoders (the
cut would skip the last layer's attention LayerNorm and the encoder's final one), parameters partitioned by
ZeRO-3 (read outside their module's forward, they are empty), decoders, chunked feed-forwards.
"""

from __future__ import annotations

from typing import Any

# architectures whose cut a test pins equal to the full forward (logits, loss, gradients)
PINNED_ARCHITECTURES = ("xlm-roberta",)


def _encoder_of(model):
    """The model's BERT-style base (embeddings + encoder.layer), or None when this shortcut does not apply."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if base is None or not layers or base.config.is_decoder or base.config.add_cross_attention:
        return None
    if base.config.model_type not in PINNED_ARCHITECTURES:
        return None
    last = layers[-1]
    if not all(hasattr(last, a) for a in ("attention", "feed_forward_chunk")):
        return None
    if not all(hasattr(last.attention.self, a) for a in ("query", "key", "value", "attention_head_size")):
        return None
    key = last.attention.self.key
    if tuple(key.weight.shape) != (key.out_features, key.in_features):
        return None  # partitioned (ZeRO-3): its weights are gathered only inside its own forward
    if getattr(last, "chunk_size_feed_forward", 0):  # chunked feed-forward: keep the model's own path
        return None
    return base


def first_token_state(base, input_ids, attention_mask):
    """The last layer's hidden state of each row's first token, shape (rows, 1, hidden)."""
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    hidden = base.embeddings(input_ids=input_ids)
    mask = create_bidirectional_mask(config=base.config, inputs_embeds=hidden, attention_mask=attention_mask)
    layers = base.encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, mask)
    last = layers[-1]
    attn = last.attention.self
    rows, length, _ = hidden.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size

    def split(x, n):  # (rows, n, heads*size) -> (rows, heads, n, size)
        return x.view(rows, n, heads, size).transpose(1, 2)

    first = hidden[:, :1]
    query = split(attn.query(first), 1)
    mask = attention_mask.bool()[:, None, None, :]
    if attn.training:
        context = torch.nn.functional.scaled_dot_product_attention(
            query, split(attn.key(hidden), length), split(attn.value(hidden), length),
            attn_mask=mask, scale=attn.scaling, dropout_p=attn.dropout.p,
        )
    else:
        context = _one_query_attention(attn, query, hidden, mask)
    context = context.transpose(1, 2).reshape(rows, 1, heads * size)
    return last.feed_forward_chunk(last.attention.output(context, first))


def _one_query_attention(attn, query, hidden, mask):
    """Attention of one query row per sequence without projecting every token to keys and values.

    Per head, q . (x W_k^T + b_k) = (q W_k) . x + q . b_k, and the last term is the same for every key, so the
    softmax drops it; and sum_t a_t (x_t W_v^T + b_v) = (sum_t a_t x_t) W_v^T + b_v since the weights sum to 1.
    So the query is moved into the hidden space (one small product per head) and the attention-weighted sum of
    hidden states is projected once, instead of projecting all T tokens twice: ~2 T H^2 multiply-adds per row
    become ~2 H^2 + 2 heads T H. Evaluation only: training keeps the standard kernel and its dropout.
    """
    import torch

    rows, heads, _, size = query.shape
    key_weight = attn.key.weight.view(heads, size, -1)  # (heads, size, hidden)
    value_weight = attn.value.weight.view(heads, size, -1)
    # one (rows x size) @ (size x hidden) product per head, then one (heads x hidden) @ (hidden x length) per row
    moved = torch.bmm(query.view(rows, heads, size).transpose(0, 1), key_weight).transpose(0, 1)  # (rows, heads, hidden)
    scores = torch.bmm(moved, hidden.transpose(1, 2)) * attn.scaling  # (rows, heads, length)
    weights = scores.masked_fill(~mask.view(rows, 1, -1), float("-inf")).softmax(dim=-1)
    summed = torch.bmm(weights, hidden).transpose(0, 1)  # (heads, rows, hidden)
    context = torch.bmm(summed, value_weight.transpose(1, 2))  # (heads, rows, size)
    if attn.value.bias is not None:
        context = context + attn.value.bias.view(heads, 1, size)
    return context.permute(1, 0, 2).unsqueeze(2)  # (rows, heads, 1, size), as the attention kernel returns


def classification_logits(model, input_ids, attention_mask):
    """``model(input_ids, attention_mask).logits`` of a sequence-classification model, in eval mode."""
    base = _encoder_of(model)
    if base is None or not hasattr(model, "classifier"):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    return model.classifier(first_token_state(base, input_ids, attention_mask))


def multiple_choice_logits(model, input_ids, attention_mask):
    """``model(input_ids, attention_mask).logits`` of a multiple-choice model (rows, choices, length), in eval mode."""
    base = _encoder_of(model)
    if base is None or getattr(base, "pooler", None) is None or not hasattr(model, "classifier"):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    choices = input_ids.shape[1]
    flat_ids, flat_mask = input_ids.view(-1, input_ids.shape[-1]), attention_mask.view(-1, attention_mask.shape[-1])
    pooled = base.pooler(first_token_state(base, flat_ids, flat_mask))
    return model.classifier(model.dropout(pooled)).view(-1, choices)


def _training_module():
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class FirstTokenTraining(torch.nn.Module):
        """Trains a first-token head with the last layer cut, the loss the HF model computes (cross-entropy).

        Its children are the HF model's own children under the same names, so parameter names, state dicts and
        DeepSpeed checkpoints are the HF model's; ``save_pretrained`` writes the HF model.
        """

        hf_model: Any  # set past Module.__setattr__, so its parameters are not registered twice

        def __init__(self, model, logits):
            super().__init__()
            for name, child in model.named_children():
                self.add_module(name, child)
            object.__setattr__(self, "hf_model", model)  # not registered: the names stay the HF model's
            self._logits = logits

        @property
        def config(self):
            return self.hf_model.config

        def forward(self, input_ids, attention_mask, labels=None):
            logits = self._logits(self.hf_model, input_ids, attention_mask)
            loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels.view(-1))
            return SequenceClassifierOutput(loss=loss, logits=logits)

        def save_pretrained(self, *args, **kwargs):
            return self.hf_model.save_pretrained(*args, **kwargs)

    return FirstTokenTraining


def first_token_training(model, logits):
    """``model`` for training through ``logits`` (``classification_logits`` or ``multiple_choice_logits``) with
    the last layer cut, or ``model`` itself where the cut does not apply (see ``_encoder_of``)."""
    if _encoder_of(model) is None or not hasattr(model, "classifier"):
        return model
    return _training_module()(model, logits)
