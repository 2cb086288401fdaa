"""Tokenizer training and MLM pretraining of micro XLM-R scales."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

from ray_xt.micro.spec import PretrainSpec, cpu_has_native_bf16  # noqa: F401 - PretrainSpec: where callers look

MAX_PIECE_LENGTH = 16  # SentencePiece's default max_sentencepiece_length
SPECIAL_PREFIX = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]


def train_tokenizer(corpus_files: list[Path], out_dir: Path, vocab_size: int, seed: int):
    """A SentencePiece unigram model (as XLM-R uses), saved so AutoTokenizer loads it.

    XLM-R's id layout is kept: <s>=0 <pad>=1 </s>=2 <unk>=3, the pieces, then <mask>.
    """
    from transformers import XLMRobertaTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "sentencepiece.bpe"
    seeds = out_dir / "seed_pieces.tsv"
    write_seed_pieces(corpus_files, seeds)
    spm.set_random_generator_seed(seed)  # byte-identical models for the same seed
    spm.SentencePieceTrainer.train(
        input=",".join(str(p) for p in corpus_files),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small world has fewer distinct pieces than asked for
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,  # deterministic output
        seed_sentencepieces_file=str(seeds),
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        minloglevel=2,
    )
    (out_dir / "sentencepiece.bpe.vocab").unlink(missing_ok=True)
    seeds.unlink()
    _strip_paths(Path(str(prefix) + ".model"))
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    pieces = [
        (sp.id_to_piece(i), sp.get_score(i))
        for i in range(sp.get_piece_size())
        if not (sp.is_unknown(i) or sp.is_control(i))
    ]
    tokenizer = XLMRobertaTokenizer(vocab=SPECIAL_PREFIX + pieces + [("<mask>", 0.0)])
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def seed_pieces(corpus_files: list[Path], max_length: int = MAX_PIECE_LENGTH) -> dict[str, int]:
    """Unigram seed candidates: every substring of every word ("▁" + word), up to ``max_length`` characters,
    seen at least twice, scored as SentencePiece scores its own seeds (frequency x length).

    Why not SentencePiece's own seeds: it takes them from a suffix array's internal nodes — substrings followed
    by more than one distinct character. In a closed synthetic lexicon a word that never takes an affix (``the``,
    an uninflected adjective, a function word of another script) is always followed by the word boundary, so
    "▁the" is never a seed, and the most frequent words of every language came out split into arbitrary
    pieces (``▁t he``, Greek ``▁ θ ο``; 1.5-2.0 pieces per word). Real corpora hide this: there "▁the" also
    begins "then" and "these".
    """
    words: Counter[str] = Counter()
    for path in corpus_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                words.update(line.split())
    candidates: Counter[str] = Counter()
    for word, count in words.items():
        text = "\u2581" + word
        for i in range(len(text)):
            for j in range(i + 2, min(len(text), i + max_length) + 1):  # single characters are always kept
                candidates[text[i:j]] += count
    return {piece: n * len(piece) for piece, n in candidates.items() if n >= 2}


def write_seed_pieces(corpus_files: list[Path], out: Path) -> None:
    scored = seed_pieces(corpus_files)
    lines = (f"{p}\t{n}\n" for p, n in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0])))
    out.write_text("".join(lines), encoding="utf-8")


def _strip_paths(model_file: Path) -> None:
    """The model records its training paths; keep only file names so the bytes depend on content alone."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined] # generated protobuf: no stubs
    proto.ParseFromString(model_file.read_bytes())
    names = [Path(p).name for p in proto.trainer_spec.input]
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.extend(names)
    proto.trainer_spec.model_prefix = Path(proto.trainer_spec.model_prefix).name
    proto.trainer_spec.seed_sentencepieces_file = Path(proto.trainer_spec.seed_sentencepieces_file).name
    model_file.write_bytes(proto.SerializeToString())


def _encode_corpus(tokenizer, corpus_files: list[Path], max_length: int, packed: bool) -> list[list[int]]:
    """Token-id sequences for MLM: one per sentence, or whole sentences of one file packed up to max_length."""
    sequences: list[list[int]] = []
    for path in corpus_files:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        ids = tokenizer(lines, truncation=True, max_length=max_length)["input_ids"]
        if not packed:
            sequences.extend(ids)
            continue
        bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        current = [bos]
        for sentence in ids:
            body = sentence[1:-1]  # drop the sentence's own <s> ... </s>
            if len(current) + len(body) + 1 > max_length and len(current) > 1:
                sequences.append(current)  # already closed by the last sentence's </s>
                current = [bos]
            current.extend(body[: max_length - 2])
            current.append(eos)  # </s> between sentences, as RoBERTa separates documents
        if len(current) > 1:
            sequences.append(current)
    return sequences


def length_grouped_batches(lengths: list[int], batch_size: int, group: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of sentence indices, drawn at random with replacement.

    ``group`` 1: plain batches of ``batch_size`` sentences. Otherwise ``group`` batches' worth of sentences are
    drawn at once, sorted by length and cut into batches of a fixed *token* budget (fairseq's ``max_tokens``):
    at most ``batch_size`` x the corpus's mean length tokens once padded, so a step computes about the real
    tokens a plain batch holds (more short sentences, fewer long ones) instead of padding them; batches are
    handed out in random order."""
    if group <= 1:
        while True:
            yield [rng.randrange(len(lengths)) for _ in range(batch_size)]
    budget = batch_size * sum(lengths) / len(lengths)
    while True:
        drawn = sorted((rng.randrange(len(lengths)) for _ in range(batch_size * group)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in drawn:  # ascending: the newest sentence is the longest, the length the batch pads to
            if current and (len(current) + 1) * lengths[i] > budget:
                batches.append(current)
                current = []
            current.append(i)
        batches.append(current)
        rng.shuffle(batches)
        yield from batches


def masked_lm_loss(model, batch: dict):
    """The MLM loss of ``XLMRobertaForMaskedLM`` with the vocabulary head run on the masked positions only.

    The head (dense, layer norm, decoder over the vocabulary) and its cross-entropy are per position, and the
    loss averages over the ~15% of positions that carry a label, so the other 85% never need logits: the same
    loss and gradients (tested) for 12-25% less time per step at micro sizes (docs/benchmarks.md).
    """
    import torch

    labels = batch["labels"]
    hidden = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    masked = labels != -100
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[masked]), labels[masked])


def pretrain_mlm(
    tokenizer_dir: Path, corpus_files: list[Path], spec: PretrainSpec, out_dir: Path, progress: bool = True,
    torch_threads: int = 1,
) -> dict:
    """MLM-pretrain an XLM-R-architecture model on the pooled monolingual corpora; save_pretrained to out_dir."""
    import torch
    import transformers
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    spec = spec.resolved()
    torch.set_num_threads(torch_threads)
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    encoded = _encode_corpus(tokenizer, corpus_files, spec.max_length, spec.packed)
    prefix = "XLMRobertaXL" if spec.architecture == "xlm-roberta-xl" else "XLMRoberta"
    config = getattr(transformers, f"{prefix}Config")(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_length + 2 + 1,  # XLM-R positions start at padding_idx + 1
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = getattr(transformers, f"{prefix}ForMaskedLM")(config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=spec.mlm_probability, seed=spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, spec.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (spec.steps - s) / max(1, spec.steps - warmup)))
    )
    losses = []
    model.train()
    batches = length_grouped_batches([len(x) for x in encoded], spec.batch_size, spec.length_group, rng)
    bar = tqdm(range(spec.steps), desc=f"MLM h{spec.hidden_size}x{spec.num_layers}", disable=not progress, mininterval=2)
    for _ in bar:
        batch = collator([{"input_ids": encoded[i]} for i in next(batches)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16 is True):
            loss = masked_lm_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    head = sum(losses[:20]) / min(20, len(losses))
    tail = sum(losses[-20:]) / min(20, len(losses))
    return {"parameters": sum(p.numel() for p in model.parameters()), "first_loss": head, "final_loss": tail}
