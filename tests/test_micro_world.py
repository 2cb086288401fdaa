"""The micro world: deterministic, in XTREME formats, loadable by transformers, and learnable by MLM."""

import filecmp
from pathlib import Path

import pytest

from ray_xt.data import FeatureCache, read_examples
from ray_xt.micro.build import build_micro, build_world
from ray_xt.micro.languages import LANGUAGES, SYNTHETIC
from ray_xt.micro.pretrain import PretrainSpec, masked_lm_loss, pretrain_mlm
from ray_xt.micro.world import WorldSpec
from ray_xt.tasks.registry import TASKS

SMALL = WorldSpec(seed=5, languages=("en", "qca", "qcy", "qso", "qgr"), corpus_sentences=300, train_size=50,
                  dev_size=20, test_size=20)


def _tree(path: Path) -> list[Path]:
    return sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())


def _assert_same_bytes(a: Path, b: Path) -> None:
    """The same files under both folders, byte for byte."""
    assert _tree(a) == _tree(b)
    match, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in _tree(a)], shallow=False)
    assert not mismatch and not errors


def test_same_seed_gives_byte_identical_world(tmp_path):
    a, tok_a = build_world(SMALL, 500, tmp_path / "a")
    b, tok_b = build_world(SMALL, 500, tmp_path / "b")
    a, b = a.parent, b.parent  # corpus, tokenizer and task files
    assert len(_tree(a)) > 20
    _assert_same_bytes(a, b)
    assert (tok_a / "tokenizer.json").read_bytes() == (tok_b / "tokenizer.json").read_bytes()


def test_tasks_written_by_parallel_workers_are_byte_identical_to_one_after_another(tmp_path):
    from ray_xt.micro.world import write_tasks

    write_tasks(SMALL, tmp_path / "one")
    write_tasks(SMALL, tmp_path / "two", workers=2)
    assert len(_tree(tmp_path / "one")) > 100
    _assert_same_bytes(tmp_path / "one", tmp_path / "two")


def test_length_grouped_batches_keep_a_token_budget_and_draw_every_sentence():
    import random
    from itertools import islice

    from ray_xt.micro.pretrain import length_grouped_batches

    lengths = [random.Random(i).randint(4, 64) for i in range(500)]
    budget = 16 * sum(lengths) / len(lengths)
    batches = list(islice(length_grouped_batches(lengths, 16, 8, random.Random(0)), 2000))
    # padded to its longest sentence, no batch exceeds the budget of a plain batch's real tokens
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    real = sum(lengths[i] for b in batches for i in b)
    assert real / padded > 0.85  # plain random batches of these lengths are about half padding
    # short sentences travel in bigger batches, and every sentence is drawn
    sizes = {len(b) for b in batches}
    assert max(sizes) > 16 > min(sizes)
    assert {i for b in batches for i in b} == set(range(len(lengths)))
    # group 1: plain batches of batch_size random sentences
    plain = list(islice(length_grouped_batches(lengths, 16, 1, random.Random(0)), 5))
    assert all(len(b) == 16 for b in plain)


def test_other_seed_changes_the_world(tmp_path):
    from dataclasses import replace

    a, _ = build_world(SMALL, 500, tmp_path)
    b, _ = build_world(replace(SMALL, seed=6), 500, tmp_path)
    assert a != b
    assert (a.parent / "corpus" / "en.txt").read_bytes() != (b.parent / "corpus" / "en.txt").read_bytes()


def test_languages_differ_in_script_and_order():
    assert len(SYNTHETIC) >= 6
    assert {p.word_order for p in SYNTHETIC} >= {"SVO", "SOV", "VSO"}
    assert len({p.script for p in SYNTHETIC}) >= 4 and any(p.script != "latin" for p in SYNTHETIC)
    assert {p.lexicon for p in SYNTHETIC} >= {"cognate", "random"}


def test_pair_tasks_round_trip_through_the_real_loader(tmp_path):
    root, _ = build_world(SMALL, 500, tmp_path)
    for name in ("pawsx", "xnli", "mnli"):
        task = TASKS[name]
        for lang in SMALL.languages:
            rows = read_examples(root, task, "dev", [lang])
            assert len(rows) == SMALL.dev_size
            assert {r["label"] for r in rows} <= set(task.labels)
        # XTREME layout: unlabeled test files, labels kept apart
        test_line = (root / task.path("test", "qso")).read_text().splitlines()[0]
        assert test_line.count("\t") == 1
        assert (root / "labels" / name / "test-qso.tsv").exists()
    # translations render the same examples: labels agree across languages
    en = read_examples(root, TASKS["pawsx"], "train", ["en"])
    qgr = read_examples(root, TASKS["pawsx"], "train", ["qgr"])
    assert [r["label"] for r in en] == [r["label"] for r in qgr] and en[0]["sentence1"] != qgr[0]["sentence1"]
    assert any(ord(ch) > 0x370 for ch in qgr[0]["sentence1"])  # Greek script


def test_missing_task_file_names_task_and_path(tmp_path):
    from ray_xt.data import DataError

    with pytest.raises(DataError, match=r"task 'pawsx', split 'dev', language 'de': expected file .*dev-de.tsv"):
        read_examples(tmp_path, TASKS["pawsx"], "dev", ["de"])
    with pytest.raises(DataError, match=r"task 'tatoeba'.*tatoeba\.deu-eng\.deu.*download_data\.sh"):
        FeatureCache(tmp_path / "f").features(tmp_path, TASKS["tatoeba"], "test", ["de"], "unused", 32)


def test_tokenizer_loads_with_transformers(tmp_path):
    from transformers import AutoTokenizer, XLMRobertaTokenizer

    root, tok_dir = build_world(SMALL, 500, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert isinstance(tok, XLMRobertaTokenizer)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1
    line = (root.parent / "corpus" / "qcy.txt").read_text().splitlines()[0]
    ids = tok(line)["input_ids"]
    assert tok.unk_token_id not in ids  # the corpus is fully covered (character_coverage=1)
    assert tok.decode(ids, skip_special_tokens=True) == line


@pytest.mark.parametrize("bf16", [False, True])
def test_tiny_pretraining_lowers_mlm_loss(tmp_path, bf16):
    """In fp32 and in bf16 mixed precision (what `auto` picks on CPUs with native bf16)."""
    root, tok_dir = build_world(SMALL, 500, tmp_path)
    spec = PretrainSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, steps=60, batch_size=32,
                        learning_rate=3e-3, bf16=bf16)
    stats = pretrain_mlm(tok_dir, sorted((root.parent / "corpus").glob("*.txt")), spec, tmp_path / "m", progress=False)
    assert stats["final_loss"] < stats["first_loss"] - 0.5
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "m"))
    assert type(model).__name__ == "XLMRobertaForMaskedLM"


def test_masked_positions_head_gives_the_full_heads_loss_and_gradients(tmp_path):
    """Pretraining runs the vocabulary head on masked positions only; the loss and every gradient must be the
    ones `XLMRobertaForMaskedLM` computes with logits for all positions."""
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, XLMRobertaConfig, XLMRobertaForMaskedLM

    root, tok_dir = build_world(SMALL, 500, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    lines = (root.parent / "corpus" / "qso.txt").read_text().splitlines()[:16]
    batch = DataCollatorForLanguageModeling(tok, seed=0)([{"input_ids": ids} for ids in tok(lines)["input_ids"]])
    assert 0 < int((batch["labels"] != -100).sum()) < int(batch["attention_mask"].sum())
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=1, type_vocab_size=1))

    def loss_and_grads(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full, full_grads = loss_and_grads(lambda: model(**batch).loss)
    sparse, sparse_grads = loss_and_grads(lambda: masked_lm_loss(model, batch))
    torch.testing.assert_close(sparse, full)
    assert sparse_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(sparse_grads[name], full_grads[name], msg=name)


def test_precision_is_resolved_into_the_model_cache_key(tmp_path):
    """`bf16: auto` becomes this machine's answer before hashing: a model folder says how it was trained."""
    from dataclasses import replace

    from ray_xt.micro.pretrain import cpu_has_native_bf16

    spec = PretrainSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, steps=2, batch_size=8)
    assert spec.bf16 == "auto" and spec.resolved().bf16 is cpu_has_native_bf16()
    assert replace(spec, bf16=False).resolved().bf16 is False
    auto = build_micro(SMALL, 500, {"t": spec}, tmp_path, progress=False).model_dirs["t"]
    explicit = build_micro(SMALL, 500, {"t": spec.resolved()}, tmp_path, progress=False).model_dirs["t"]
    other = build_micro(SMALL, 500, {"t": replace(spec, bf16=not cpu_has_native_bf16())}, tmp_path,
                        progress=False).model_dirs["t"]
    assert auto == explicit != other


def test_cached_build_is_reused(tmp_path):
    spec = PretrainSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, steps=5, batch_size=8)
    first = build_micro(SMALL, 500, {"t": spec}, tmp_path, progress=False)
    stamp = (first.model_dirs["t"] / ".complete").stat().st_mtime_ns
    second = build_micro(SMALL, 500, {"t": spec}, tmp_path, progress=False)
    assert second == first
    assert (second.model_dirs["t"] / ".complete").stat().st_mtime_ns == stamp


def test_parallel_build_writes_task_files_while_the_largest_scale_pretrains(tmp_path, ray_local):
    """With Ray, the largest scale pretrains while this process writes the task files: the same world files
    as a build without Ray, and every scale complete."""
    small = PretrainSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, steps=5, batch_size=8)
    large = PretrainSpec(hidden_size=48, num_layers=2, num_heads=2, intermediate_size=96, steps=5, batch_size=8)
    world = build_micro(SMALL, 500, {"s": small, "l": large}, tmp_path / "ray", use_ray=True, progress=False)
    assert all((d / ".complete").exists() and (d / "model.safetensors").exists() for d in world.model_dirs.values())
    assert (world.root / ".complete").exists()
    root, _ = build_world(SMALL, 500, tmp_path / "plain")
    _assert_same_bytes(world.root, root)


def test_every_language_s_most_frequent_words_are_single_pieces(tmp_path):
    """Words that never take an affix ("the", function words in other scripts) are whole pieces: SentencePiece's own
    seeds (suffix-array nodes) never hold them in a closed lexicon, which split them into arbitrary pieces."""
    from collections import Counter

    from transformers import AutoTokenizer

    root, tok_dir = build_world(SMALL, 2000, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    for lang in SMALL.languages:
        words = Counter((root.parent / "corpus" / f"{lang}.txt").read_text(encoding="utf-8").split())
        for word, _ in words.most_common(5):
            assert tok.tokenize(word) == ["\u2581" + word], (lang, word)
    assert tok.tokenize("the") == ["\u2581the"]


def test_feature_cache_tokenises_once(tmp_path):
    root, tok_dir = build_world(SMALL, 500, tmp_path)
    cache = FeatureCache(tmp_path / "features")
    a = cache.features(root, TASKS["pawsx"], "dev", ["en"], str(tok_dir), 32)
    b = cache.features(root, TASKS["pawsx"], "dev", ["en"], str(tok_dir), 32)
    c = cache.features(root, TASKS["pawsx"], "dev", ["en"], str(tok_dir), 48)
    assert a == b != c
    assert (cache.hits, cache.misses) == (1, 2)


def test_translate_train_mixture_is_size_matched(tmp_path):
    root, _ = build_world(SMALL, 500, tmp_path)
    langs = ["qca", "qso", "qgr"]
    rows = read_examples(root, TASKS["mnli"], "train", langs)
    assert len(rows) == SMALL.train_size
    per_lang = {lang: read_examples(root, TASKS["mnli"], "train", [lang]) for lang in langs}
    for i in range(6):
        assert rows[i] == per_lang[langs[i % 3]][i]


def test_every_language_has_a_profile():
    for code, profile in LANGUAGES.items():
        assert code in profile.describe()


def test_tagging_files_round_trip(tmp_path):
    from ray_xt.formats import read_conll

    root, _ = build_world(SMALL, 500, tmp_path)
    pos = read_conll(root / "download" / "udpos" / "dev-qgr.tsv")
    assert len(pos.tokens) == SMALL.dev_size
    assert all(len(t) == len(g) for t, g in zip(pos.tokens, pos.tags))
    assert {tag for sent in pos.tags for tag in sent} <= {"DET", "ADJ", "NOUN", "PROPN", "VERB", "PART", "ADP", "CCONJ",
                                                          "PUNCT"}
    ner = read_conll(root / "download" / "panx" / "dev-qso.tsv")
    assert {tag for sent in ner.tags for tag in sent} == {"O", "B-PER", "B-LOC"}
    # the same latent sentences in every language: entity counts agree across languages
    ner_en = read_conll(root / "download" / "panx" / "dev-en.tsv")
    assert [s.count("B-PER") for s in ner.tags] == [s.count("B-PER") for s in ner_en.tags]
    test = read_conll(root / "download" / "udpos" / "test-qso.tsv")
    assert test.tags is None and len(test.tokens) == SMALL.test_size
    labels = read_conll(root / "labels" / "udpos" / "test-qso.tsv")
    assert labels.tokens == test.tokens
    assert not (root / "download" / "udpos" / "train-qso.tsv").exists()  # target tasks train on English only
    ccg = read_conll(root / "intermediate" / "ccg" / "train-qso.tsv")  # intermediate tasks are translated
    assert any(tag == "NOUN/obj" for sent in ccg.tags for tag in sent)


def test_retrieval_files_round_trip(tmp_path):
    from ray_xt.formats import read_bucc, read_tatoeba

    root, _ = build_world(SMALL, 500, tmp_path)
    src, eng = read_tatoeba(root / "download" / "tatoeba", "qgr")
    assert len(src) == len(eng) == SMALL.test_size and src != eng
    bucc = read_bucc(root / "download" / "bucc2018", "qcy", "dev")
    assert len(bucc.gold) == SMALL.dev_size // 2
    assert len(bucc.source) == len(bucc.english) == SMALL.dev_size
    # gold pairs are translations: same names (Latin-script anchors) on both sides
    import re

    for sid, eid in list(bucc.gold)[:10]:
        names = lambda s: sorted(re.findall(r"[a-z]+", s))  # noqa: E731 - Latin words in a Cyrillic sentence are names
        assert all(n.rstrip("s") in bucc.english[eid] for n in names(bucc.source[sid]))


@pytest.mark.parametrize("lang", SMALL.languages)
def test_qa_files_in_squad_format_with_exact_spans(tmp_path_factory, lang):
    from ray_xt.formats import read_squad
    from ray_xt.micro.world import qa_file

    root, _ = build_world(SMALL, 500, tmp_path_factory.getbasetemp() / "qa")
    for task, split in (("xquad", "test"), ("mlqa", "dev"), ("tydiqa", "dev"), ("squad", "train")):
        examples = read_squad(root / qa_file(task, split, lang))
        assert len(examples) == {"test": SMALL.test_size, "dev": SMALL.dev_size, "train": SMALL.train_size}[split]
        for ex in examples:
            answer = ex.answers[0]
            assert ex.context[answer["answer_start"]: answer["answer_start"] + len(answer["text"])] == answer["text"]
            assert ex.question.endswith("?")
    assert not (root / qa_file("tydiqa", "train", "qso")).exists() or lang == "en"


def test_multiple_choice_and_anli_files(tmp_path):
    root, _ = build_world(SMALL, 500, tmp_path)
    for task, n in (("hellaswag", 4), ("cosmosqa", 4), ("socialiqa", 3), ("commonsenseqa", 5)):
        en = read_examples(root, TASKS[task], "dev", ["en"])
        qgr = read_examples(root, TASKS[task], "dev", ["qgr"])
        assert len(en) == SMALL.dev_size and all(len(r["choices"]) == n for r in en)
        assert [r["label"] for r in en] == [r["label"] for r in qgr]  # translations of the same examples
        labels = [r["label"] for r in en]
        assert len(set(labels)) > 1  # the gold position varies
    rows = read_examples(root, TASKS["mnli"], "dev", ["en"])
    anli = read_examples(root, TASKS["anli"], "dev", ["en"])
    assert len(anli) == SMALL.dev_size and len(rows) == SMALL.dev_size


def test_commonsense_answers_are_background_knowledge_stated_in_every_corpus(tmp_path):
    """The CommonsenseQA analogue has no context: its answer (a noun's home place) must be learnable from
    each language's monolingual corpus, where clauses about that noun mostly happen at that place."""
    import collections

    from ray_xt.micro.languages import Renderer
    from ray_xt.micro.latent import PLACES, Vocabulary, home_place

    root, _ = build_world(SMALL, 500, tmp_path)
    rows = read_examples(root, TASKS["commonsenseqa"], "dev", ["qso"])
    renderer = Renderer(LANGUAGES["qso"], Vocabulary(), SMALL.seed)
    place_word = {renderer.word(p): p for p in PLACES}
    assert all(not r["context"] and len(set(r["choices"])) == 5 for r in rows)
    assert all(set(r["choices"]) <= set(place_word) for r in rows)
    # a random-lexicon language's corpus states the facts: in sentences naming a noun, its home place is the
    # most frequent place (a bigger corpus than SMALL's, for counts that are not noise)
    from dataclasses import replace

    from ray_xt.micro.world import write_corpus

    lines = write_corpus(replace(SMALL, corpus_sentences=4000), tmp_path / "big")["qso"].read_text(
        encoding="utf-8").splitlines()
    for noun in ("dog", "teacher", "apple"):
        word = renderer.word(noun)
        seen = collections.Counter(w for line in lines if word in line.split() for w in line.split() if w in place_word)
        assert place_word[seen.most_common(1)[0][0]] == home_place(noun)


def test_packed_pretraining_sequences_hold_whole_sentences_of_one_language(tmp_path):
    from transformers import AutoTokenizer

    from ray_xt.micro.pretrain import _encode_corpus

    root, tok_dir = build_world(SMALL, 500, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    files = sorted((root.parent / "corpus").glob("*.txt"))
    packed = _encode_corpus(tok, files, 64, packed=True)
    single = _encode_corpus(tok, files, 64, packed=False)
    assert all(len(s) <= 64 and s[0] == tok.bos_token_id and s[-1] == tok.eos_token_id for s in packed)
    assert len(packed) < len(single) / 2  # several sentences per sequence
    # nothing lost or reordered: the packed bodies are the sentences' bodies in order
    flat = [t for s in packed for t in s if t != tok.bos_token_id]
    assert flat == [t for s in single for t in s[1:]]
    # never two languages in one sequence: every sequence decodes into one file's lines
    lines_by_lang = [set(f.read_text(encoding="utf-8").splitlines()) for f in files]
    for seq in packed[:: max(1, len(packed) // 50)]:
        sentences = tok.decode(seq[1:-1]).split("</s>")
        assert any(all(x.strip() in lines for x in sentences) for lines in lines_by_lang)


def test_selectional_preferences_are_stated_in_a_random_lexicon_corpus(tmp_path):
    """Verbs take their usual objects (a fixed preference of the latent world), so a random-lexicon language's
    monolingual corpus has the same co-occurrence structure as English's: what lets MLM align languages
    without parallel text. Sovish marks objects with the case suffix -o, which finds them without parsing."""
    import collections
    from dataclasses import replace

    from ray_xt.micro.languages import Renderer
    from ray_xt.micro.latent import OBJECTS_PER_VERB, Vocabulary, preferences
    from ray_xt.micro.world import write_corpus

    vocab = Vocabulary()
    profile = LANGUAGES["qso"]
    renderer = Renderer(profile, vocab, SMALL.seed)
    object_of = {renderer.word(n) + profile.object_marker: n for n in vocab.nouns}
    lines = write_corpus(replace(SMALL, corpus_sentences=6000, languages=("qso",)), tmp_path)["qso"].read_text(
        encoding="utf-8").splitlines()
    for verb in ("eat", "paint", "follow"):
        word = renderer.word(verb)
        clauses = [c for line in lines for c in line.split(f" {profile.conjunction} ") if word in c.split()]
        seen = collections.Counter(object_of[w] for clause in clauses for w in clause.split() if w in object_of)
        usual = set(preferences(verb, vocab.nouns, OBJECTS_PER_VERB, "object"))
        top = {n for n, _ in seen.most_common(OBJECTS_PER_VERB)}
        # by chance two sets of 8 of 40 nouns share 1.6 on average
        assert len(top & usual) >= OBJECTS_PER_VERB - 2, (verb, seen.most_common(12), usual)


def test_web_text_second_clauses_mostly_continue_with_a_participant_of_the_first(tmp_path):
    """Coherent text: a line's second clause is usually about someone its first clause mentioned, so MLM is
    rewarded for finding the same word elsewhere in a sequence. Independent clauses share a participant only by
    chance, far less often."""
    from dataclasses import replace

    from ray_xt.micro.latent import Vocabulary
    from ray_xt.micro.world import write_corpus

    vocab = Vocabulary()
    participants = set(vocab.nouns) | set(vocab.names)
    lines = write_corpus(replace(SMALL, corpus_sentences=2000, languages=("en",)), tmp_path)["en"].read_text(
        encoding="utf-8").splitlines()
    conjunction = f" {LANGUAGES['en'].conjunction} "
    pairs = [line.removesuffix(" .").split(conjunction) for line in lines if conjunction in line]
    assert 0.4 < len(pairs) / len(lines) < 0.6  # TWO_CLAUSE_RATE of the lines have a second clause

    def mentioned(words: str) -> set[str]:
        return {form for w in words.split() for form in (w, w.removesuffix("s"))} & participants  # plural -s

    shared = sum(bool(mentioned(first) & mentioned(second)) for first, second in pairs) / len(pairs)
    assert shared > 0.7, shared  # CONTINUATION_RATE 0.8 plus chance; independent clauses: 0.05


def test_web_text_code_switches_to_english_loans_but_task_data_never_does(tmp_path):
    """Random-lexicon languages write a share of content words as English loans in their pretraining corpus
    (the anchors that align them with English without parallel text); their task files stay clean, so
    zero-shot evaluation never sees an English word, and the zero-overlap language stays at zero."""
    import random

    from ray_xt.micro.languages import Renderer
    from ray_xt.micro.latent import LatentSampler, Vocabulary

    vocab = Vocabulary()
    content = set(vocab.nouns + vocab.adjectives + vocab.verbs + vocab.places)
    # the rate: share of content tokens written in Latin script, over 2,000 sampled clauses
    for code in ("qgr", "qka"):
        profile = LANGUAGES[code]
        web = Renderer(profile, vocab, SMALL.seed).web_text(random.Random(0))
        sampler = LatentSampler(random.Random(1), vocab)
        tokens = [t for _ in range(2000) for t in web.tokens([sampler.clause()]) if t.pos in ("NOUN", "VERB", "ADJ")]
        latin = [t for t in tokens if t.text.isascii()]
        assert abs(len(latin) / len(tokens) - profile.code_switch) < 0.02, (code, len(latin) / len(tokens))
        # loans keep the native morphology (in Latin script): a past-tense loan carries the past affix
        assert {t.text for t in latin} - content, code
        assert all(any(c in t.text for c in content) for t in latin)

    root, _ = build_world(SMALL, 500, tmp_path)
    def latin_content(words: list[str]) -> set[str]:  # Latin-script words that are not names
        return {w for w in words if w.isascii() and w != "." and not any(w.startswith(n) for n in vocab.names)}

    corpus = (root.parent / "corpus" / "qgr.txt").read_text(encoding="utf-8").split()
    assert latin_content(corpus) and all(any(c in w for c in content) for w in latin_content(corpus))
    for task, split in (("xnli", "dev"), ("xnli", "test"), ("pawsx", "dev")):
        lines = (root / TASKS[task].path(split, "qgr")).read_text(encoding="utf-8").splitlines()
        sentences = [s for line in lines for s in line.split("\t")[:2]]  # not the label column
        assert not latin_content(" ".join(sentences).split()), (task, split)
    # Cyrillic Cognata keeps no surface overlap with English anywhere, corpus included
    assert LANGUAGES["qcy"].code_switch == 0
    assert not latin_content((root.parent / "corpus" / "qcy.txt").read_text(encoding="utf-8").split())


def test_a_script_without_a_main_guard_still_gets_its_task_files(tmp_path):
    # Spawned task writers re-import the calling script; one that builds at import time kills them. The build
    # must still finish (in the calling process), with the same bytes.
    import subprocess
    import sys

    from ray_xt.micro.world import write_tasks

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "from ray_xt.micro.world import WorldSpec, write_tasks\n"
        f"write_tasks(WorldSpec(**{SMALL.__dict__!r}), Path({str(tmp_path / 'two')!r}), workers=2)\n"
        "print('written')\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["written"] and "writing the micro world's task files in this process" in out.stderr
    write_tasks(SMALL, tmp_path / "one")
    _assert_same_bytes(tmp_path / "one", tmp_path / "two")
