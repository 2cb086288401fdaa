"""How a micro scale is pretrained: a plain record the scale table (``ray_xt.scales``) holds and the pretraining
code (``ray_xt.micro.pretrain``) reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class PretrainSpec:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    steps: int
    batch_size: int = 64
    max_length: int = 64
    learning_rate: float = 1e-3
    mlm_probability: float = 0.15
    seed: int = 0
    # Pack whole sentences of one language into max_length sequences (RoBERTa's FULL-SENTENCES, never mixing
    # languages). Off by default: at equal wall time it gave no lower held-out loss (each step costs ~1.35x),
    # and with fewer optimizer steps cross-lingual transfer vanished (docs/micro_world.md).
    packed: bool = False
    # Mixed precision: bf16 autocast for the forward pass (weights, optimizer and loss stay fp32), as XLM-R was
    # itself pretrained in reduced precision. On CPUs with native bf16 (AVX512-BF16, AMX) steps are 1.3-1.7x
    # faster, which bought the scales more optimizer steps in the same build time. "auto": where the CPU (which
    # pretraining runs on) has it, resolved before the spec is hashed, so the cache key says which was used.
    bf16: bool | str = "auto"
    # Length-grouped batches: this many batches of random sentences are drawn at once, sorted by length and cut
    # into batches (the idea of HF's LengthGroupedSampler), so a batch pads to a length close to its sentences'.
    # Plain random batches of this corpus (sentences of 4-64 pieces, mean 18) were 58% padding; grouping cuts
    # the cost of a step about in half, and the build spends what it saves on more optimizer steps. 1 = plain.
    length_group: int = 32
    # "xlm-roberta-xl": XLM-R XL's architecture (pre-LayerNorm; transformers' XLMRobertaXL classes), so its code
    # paths (first-token cut, ZeRO-3 gathering, retrieval layers) run on CPU at micro size
    architecture: str = "xlm-roberta"

    def resolved(self) -> PretrainSpec:
        return replace(self, bf16=cpu_has_native_bf16()) if self.bf16 == "auto" else self

    def key_fields(self) -> dict:
        """What the spec's cache key and the stage keys hash: a field added later stays out at its default, so
        the models and stages built before it existed keep their keys."""
        fields = asdict(self)
        if fields["architecture"] == "xlm-roberta":
            del fields["architecture"]
        return fields

    def cost(self) -> float:
        """Relative compute of a build (for scheduling the largest first): steps x per-layer width cost."""
        return self.steps * self.num_layers * (self.hidden_size ** 2 + self.hidden_size * self.intermediate_size)


def cpu_has_native_bf16() -> bool:
    """Does this CPU run bf16 matrix products natively (AVX512-BF16, AMX)? Elsewhere bf16 autocast is emulated
    and slower than fp32. Pretraining always runs on the CPU, so a GPU's bf16 support does not matter here."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
