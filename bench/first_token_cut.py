"""The first-token cut at real geometry: one training step (forward and backward) of a sentence-pair model through
``ray_xt.families.first_token`` vs the HF model's own forward, at XLM-R base's and large's shapes.

    .venv/bin/python bench/first_token_cut.py [--scales base,large] [--batch 2] [--tokens 128] [--repeats 3] [--smoke]

Randomly initialised models of the real shapes (hidden size, layers, heads, feed-forward; a small vocabulary,
which the cut does not touch), sdpa attention, dropout off; both sides run the same batch in turns (best time of
``--repeats``) and must give the same loss. The cut skips the last layer's work for every token but the first, so
it can save at most one layer in ``num_hidden_layers``: the ratio says what of that a training step keeps. Prints
markdown rows for docs/benchmarks.md. ``--smoke``: tiny shapes, to keep the script alive in CI.
"""

from __future__ import annotations

import argparse

from _world import best_of_turns, machine, today

SHAPES = {  # (hidden, layers, heads, feed-forward) of the hub checkpoints' config.json
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
    "smoke": (64, 2, 2, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="base,large", help="comma-separated: base, large")
    parser.add_argument("--batch", type=int, default=2, help="sentence pairs per step")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per pair (XTREME's max_seq_length)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, to keep the script alive in CI")
    opts = parser.parse_args()

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from ray_xt.families.first_token import classification_logits, first_token_training

    torch.set_num_threads(opts.threads)
    rows = []
    for scale in ["smoke"] if opts.smoke else opts.scales.split(","):
        hidden, layers, heads, ffn = SHAPES[scale]
        torch.manual_seed(0)
        config = XLMRobertaConfig(vocab_size=1000, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=opts.tokens + 2,
                                  num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                  attn_implementation="sdpa")
        model = XLMRobertaForSequenceClassification(config).train()
        cut = first_token_training(model, classification_logits)
        tokens = 8 if opts.smoke else opts.tokens
        batch = {"input_ids": torch.randint(5, 1000, (opts.batch, tokens)),
                 "attention_mask": torch.ones(opts.batch, tokens, dtype=torch.long),
                 "labels": torch.randint(0, 2, (opts.batch,))}

        def step(m, batch=batch):
            def run():
                m.zero_grad()
                loss = m(**batch).loss
                loss.backward()
                return loss.item()
            return run

        (full_s, full_loss), (cut_s, cut_loss) = best_of_turns(opts.repeats, step(model), step(cut))
        assert abs(full_loss - cut_loss) < 1e-4 * max(1.0, abs(full_loss)), (full_loss, cut_loss)
        rows.append(f"| {today()} | {machine()} | XLM-R {scale} shape ({layers} layers), {opts.batch} x {tokens} tokens "
                    f"| {full_s:.2f} s | {cut_s:.2f} s | {full_s / cut_s:.3f}x | {1 + 1 / (layers - 1):.3f}x |")
    print("| date | machine | model, batch | full forward | first-token cut | ratio | bound (all of one layer) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
