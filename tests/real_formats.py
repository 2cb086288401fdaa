"""Fixtures in the exact upstream formats, for driving the real data path offline.

- ``build_hub_mirror``: every dataset repo the task registry names, as ``huggingface-cli download --repo-type
  dataset <id> --local-dir <mirror>/<id>`` leaves it: a README.md whose YAML ``configs:`` maps each config's
  splits to parquet files (``<config>/<split>-00000-of-00001.parquet``, the hub's parquet conversion layout), and
  for the repos that are loading scripts on main (allenai/social_i_qa, allenai/cosmos_qa) their
  ``refs/convert/parquet`` branch (``default/<split>/0000.parquet``, no README). Column names, ClassLabel
  features and split names as the hub has them (dataset cards of facebook/xnli, google-research-datasets/paws-x,
  google/xtreme, google/xquad, nyu-mll/glue, facebook/anli, rajpurkar/squad, Rowan/hellaswag,
  tau/commonsense_qa, allenai/social_i_qa, allenai/cosmos_qa; google/xtreme's udpos splits per its loading
  script in huggingface/datasets: Kazakh train+test, Tagalog/Thai/Yoruba test only). Real text where
  ``../shared/data`` has it (XQuAD in 12 languages, Tatoeba in XTREME's 36), generated rows elsewhere.
- ``build_translations``: XTREME's ``xtreme_translations`` bucket layout (``XNLI/translate-train/
  en-{lang}-translated.tsv``: five tab-separated columns, English pair first; ``SQuAD/translate-{train,dev}``).
- ``build_bucc``: BUCC 2018 as xtreme's download_data.sh leaves it (``download/bucc2018/{lang}-en.{split}.*``).
- ``build_model_mirror``: an XLM-R-format checkpoint (``XLMRobertaForMaskedLM``, a SentencePiece tokenizer in
  XLM-R's id layout, ``save_pretrained``) under ``<mirror>/FacebookAI/xlm-roberta-base``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ray_xt.tasks.registry import (
    TASKS,
    TATOEBA_ISO3,
    UD_NAMES,
    UDPOS_HUB_MERGED,
    UDPOS_MISSING_SPLITS,
    XTREME_LANGUAGES,
)

UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]
PANX_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
NLI = ["entailment", "neutral", "contradiction"]
WORDS = ["river", "stone", "green", "walks", "house", "quick", "bird", "sings", "table", "light", "moves", "cold",
         "bread", "sees", "tall", "water", "opens", "small", "door", "reads"]
TYDIQA_NAMES = {"en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
                "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
SIZES = {"train": 16, "validation": 8, "test": 8}


def sentence(rng: random.Random, lang: str, n: int = 6) -> str:
    """A generated sentence whose words carry the language code (so languages differ on the surface)."""
    return " ".join(f"{lang}{rng.choice(WORDS)}" if lang != "en" else rng.choice(WORDS) for _ in range(n))


def _write_repo(root: Path, repo: str, configs: dict[str, dict[str, object]], convert_branch: bool = False) -> None:
    """configs: {config name: {split: datasets.Dataset}} written as the hub holds them."""
    base = root / repo
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, data in splits.items():
            if convert_branch:
                path = base / config / split / "0000.parquet"
            else:
                path = base / config / f"{split}-00000-of-00001.parquet"
                lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
            path.parent.mkdir(parents=True, exist_ok=True)
            data.to_parquet(str(path))
    if not convert_branch:  # refs/convert/parquet has no README: datasets infers <config>/<split>/ itself
        (base / "README.md").write_text("\n".join(lines + ["---", f"# {repo} (test fixture in the hub's layout)", ""]))


def _qa_rows(rng: random.Random, lang: str, n: int, id_prefix: str) -> dict:
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for i in range(n):
        answer = f"{lang}{rng.choice(WORDS)}"
        context = f"{sentence(rng, lang, 5)} {answer} {sentence(rng, lang, 4)}."
        rows["id"].append(f"{id_prefix}-{i}")
        rows["title"].append("t")
        rows["context"].append(context)
        rows["question"].append(sentence(rng, lang, 4) + "?")
        rows["answers"].append({"text": [answer], "answer_start": [context.index(answer)]})
    return rows


def _squad_document(columns: dict) -> dict:
    paragraphs = [{"context": c, "qas": [{"id": i, "question": q,
                                          "answers": [{"text": t, "answer_start": s}
                                                      for t, s in zip(a["text"], a["answer_start"])]}]}
                  for i, c, q, a in zip(columns["id"], columns["context"], columns["question"], columns["answers"])]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}


def _real_xquad(shared: Path | None, lang: str, n: int) -> dict | None:
    path = shared / "xquad" / f"xquad.{lang}.json" if shared else None
    if path is None or not path.is_file():
        return None
    rows = {"id": [], "context": [], "question": [], "answers": []}
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                if len(rows["id"]) < n:
                    rows["id"].append(qa["id"])
                    rows["context"].append(para["context"])
                    rows["question"].append(qa["question"])
                    rows["answers"].append({"text": [a["text"] for a in qa["answers"]],
                                            "answer_start": [a["answer_start"] for a in qa["answers"]]})
    return rows


def build_hub_mirror(root: Path, shared: Path | None, seed: int = 0) -> Path:
    from datasets import ClassLabel, Dataset, Features, List, Value

    rng = random.Random(seed)
    qa_features = Features({"id": Value("string"), "title": Value("string"), "context": Value("string"),
                            "question": Value("string"),
                            "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))}})
    xquad_features = Features({k: v for k, v in qa_features.items() if k != "title"})

    def nli(lang: str, n: int, names=("premise", "hypothesis")):
        return {names[0]: [sentence(rng, lang) for _ in range(n)], names[1]: [sentence(rng, lang) for _ in range(n)],
                "label": [rng.randrange(3) for _ in range(n)]}

    # facebook/xnli: a config per language, premise/hypothesis/label (ClassLabel)
    xnli_features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                              "label": ClassLabel(names=NLI)})
    _write_repo(root, "facebook/xnli", {lang: {s: Dataset.from_dict(nli(lang, n), features=xnli_features)
                                               for s, n in SIZES.items()} for lang in XTREME_LANGUAGES["xnli"].split(",")})
    # google-research-datasets/paws-x
    paws_features = Features({"id": Value("int32"), "sentence1": Value("string"), "sentence2": Value("string"),
                              "label": ClassLabel(names=["0", "1"])})
    _write_repo(root, "google-research-datasets/paws-x", {lang: {s: Dataset.from_dict(
        {"id": list(range(n)), "sentence1": [sentence(rng, lang) for _ in range(n)],
         "sentence2": [sentence(rng, lang) for _ in range(n)], "label": [rng.randrange(2) for _ in range(n)]},
        features=paws_features) for s, n in SIZES.items()} for lang in XTREME_LANGUAGES["pawsx"].split(",")})

    # google/xtreme: udpos.<Name>, PAN-X.<xx>, tydiqa, tatoeba.<iso3>, MLQA.<l>.<l>
    xtreme: dict[str, dict] = {}
    ud_features = Features({"tokens": List(Value("string")), "pos_tags": List(ClassLabel(names=UPOS))})
    for lang in XTREME_LANGUAGES["udpos"].split(","):
        missing = {"dev": "validation", "train": "train"}
        absent = {missing[s] for s in UDPOS_MISSING_SPLITS.get(lang, ())}
        splits = {}
        for split, n in SIZES.items():
            if split not in absent:
                tokens = [sentence(rng, lang, rng.randint(3, 7)).split() for _ in range(n)]
                splits[split] = Dataset.from_dict({"tokens": tokens, "pos_tags": [[rng.randrange(len(UPOS)) for _ in t]
                                                                                  for t in tokens]}, features=ud_features)
        if lang in UDPOS_HUB_MERGED and "train" in splits:  # the real config's extra treebank, e.g. Ancient Greek
            extra = [["ἐν", "ἀρχῇ", "ἦν", "ὁ", "λόγος"] for _ in range(n)]
            splits["train"] = Dataset.from_dict(
                {"tokens": list(splits["train"]["tokens"]) + extra,
                 "pos_tags": list(splits["train"]["pos_tags"]) + [[rng.randrange(len(UPOS)) for _ in t] for t in extra]},
                features=ud_features)
        xtreme[f"udpos.{UD_NAMES[lang]}"] = splits
    panx_features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=PANX_TAGS)),
                              "langs": List(Value("string"))})
    for lang in XTREME_LANGUAGES["panx"].split(","):
        splits = {}
        for split, n in SIZES.items():
            tokens = [sentence(rng, lang, rng.randint(3, 7)).split() for _ in range(n)]
            splits[split] = Dataset.from_dict({"tokens": tokens, "ner_tags": [[rng.choice([0, 0, 1, 2, 3, 5]) for _ in t]
                                                                              for t in tokens],
                                               "langs": [[lang] * len(t) for t in tokens]}, features=panx_features)
        xtreme[f"PAN-X.{lang}"] = splits
    tydiqa = {}
    for split in ("train", "validation"):
        columns: dict[str, list] = {k: [] for k in qa_features}
        for lang in XTREME_LANGUAGES["tydiqa"].split(","):
            if split == "train" and lang != "en":
                rows = _qa_rows(rng, lang, 4, f"{TYDIQA_NAMES[lang]}-{split}")
            else:
                rows = _qa_rows(rng, lang, SIZES[split], f"{TYDIQA_NAMES[lang]}-{split}")
            for k in columns:
                columns[k] += rows[k]
        tydiqa[split] = Dataset.from_dict(columns, features=qa_features)
    xtreme["tydiqa"] = tydiqa
    tatoeba_features = Features({k: Value("string") for k in ("source_sentence", "target_sentence", "source_lang",
                                                              "target_lang")})
    for lang in XTREME_LANGUAGES["tatoeba"].split(","):
        iso3 = TATOEBA_ISO3[lang]
        real = shared / "tatoeba" / f"tatoeba.{iso3}-eng.{iso3}" if shared else None
        if real is not None and real.is_file():
            src = real.read_text(encoding="utf-8").splitlines()[:40]
            eng = (shared / "tatoeba" / f"tatoeba.{iso3}-eng.eng").read_text(encoding="utf-8").splitlines()[:40]
        else:
            src = [sentence(rng, lang) for _ in range(20)]
            eng = [sentence(rng, "en") for _ in range(20)]
        # the hub's loading script kept each line's newline; the parquet conversion has them too
        xtreme[f"tatoeba.{iso3}"] = {"validation": Dataset.from_dict(
            {"source_sentence": [s + "\n" for s in src], "target_sentence": [e + "\n" for e in eng],
             "source_lang": [iso3] * len(src), "target_lang": ["eng"] * len(src)}, features=tatoeba_features)}
    for lang in XTREME_LANGUAGES["mlqa"].split(","):
        xtreme[f"MLQA.{lang}.{lang}"] = {s: Dataset.from_dict(_qa_rows(rng, lang, SIZES[s], f"mlqa-{lang}-{s}"),
                                                              features=qa_features) for s in ("validation", "test")}
    _write_repo(root, "google/xtreme", xtreme)

    # google/xquad: validation only; real XQuAD text
    xquad = {lang: _real_xquad(shared, lang, 24) or {k: v for k, v in _qa_rows(rng, lang, 8, f"xq-{lang}").items()
                                                      if k != "title"}
             for lang in XTREME_LANGUAGES["xquad"].split(",")}
    _write_repo(root, "google/xquad", {f"xquad.{lang}": {"validation": Dataset.from_dict(rows, features=xquad_features)}
                                       for lang, rows in xquad.items()})

    # nyu-mll/glue: mnli, qqp
    glue_nli = Features({"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=NLI),
                         "idx": Value("int32")})
    qqp_features = Features({"question1": Value("string"), "question2": Value("string"),
                             "label": ClassLabel(names=["not_duplicate", "duplicate"]), "idx": Value("int32")})

    def with_idx(columns: dict) -> dict:
        return {**columns, "idx": list(range(len(columns["label"])))}

    mnli_splits = {"train": 24, "validation_matched": 8, "validation_mismatched": 8, "test_matched": 8,
                   "test_mismatched": 8}
    _write_repo(root, "nyu-mll/glue", {
        "mnli": {s: Dataset.from_dict(with_idx(nli("en", n) if "test" not in s else
                                               {**nli("en", n), "label": [-1] * n}), features=glue_nli)
                 for s, n in mnli_splits.items()},
        "qqp": {s: Dataset.from_dict(with_idx({"question1": [sentence(rng, "en") + "?" for _ in range(n)],
                                               "question2": [sentence(rng, "en") + "?" for _ in range(n)],
                                               "label": [rng.randrange(2) for _ in range(n)]}), features=qqp_features)
                for s, n in SIZES.items()},
    })
    # facebook/anli: plain_text, rounds as splits
    anli_features = Features({"uid": Value("string"), "premise": Value("string"), "hypothesis": Value("string"),
                              "label": ClassLabel(names=NLI), "reason": Value("string")})
    _write_repo(root, "facebook/anli", {"plain_text": {f"{s}_r{r}": Dataset.from_dict(
        {"uid": [f"{s}{r}-{i}" for i in range(8)], **nli("en", 8), "reason": [""] * 8}, features=anli_features)
        for r in (1, 2, 3) for s in ("train", "dev", "test")}})
    # rajpurkar/squad; its validation split holds XQuAD's English questions under their SQuAD ids, as the real one
    # does (XQuAD is 1,190 questions of SQuAD v1.1 dev: its README), beside questions of its own
    squad = {s: _qa_rows(rng, "en", n, f"sq-{s}") for s, n in (("train", 24), ("validation", 8))}
    xquad_en = _real_xquad(shared, "en", 1190) or xquad["en"]  # without shared data: the fixture's own XQuAD
    for column, values in xquad_en.items():
        squad["validation"][column] += values
    squad["validation"]["title"] += ["xquad article"] * len(xquad_en["id"])
    _write_repo(root, "rajpurkar/squad", {"plain_text": {s: Dataset.from_dict(rows, features=qa_features)
                                                         for s, rows in squad.items()}})
    # Rowan/hellaswag: label is a string; test labels are empty
    hs_features = Features({"ind": Value("int32"), "activity_label": Value("string"), "ctx_a": Value("string"),
                            "ctx_b": Value("string"), "ctx": Value("string"), "endings": List(Value("string")),
                            "source_id": Value("string"), "split": Value("string"), "split_type": Value("string"),
                            "label": Value("string")})

    def hellaswag(split: str, n: int) -> dict:
        ctx_a = [sentence(rng, "en") for _ in range(n)]
        return {"ind": list(range(n)), "activity_label": ["a"] * n, "ctx_a": ctx_a, "ctx_b": ["then"] * n,
                "ctx": [c + " then" for c in ctx_a], "endings": [[sentence(rng, "en", 4) for _ in range(4)]
                                                                 for _ in range(n)],
                "source_id": ["s"] * n, "split": [split] * n, "split_type": ["indomain"] * n,
                "label": ["" if split == "test" else str(rng.randrange(4)) for _ in range(n)]}

    _write_repo(root, "Rowan/hellaswag", {"default": {s: Dataset.from_dict(hellaswag(s, n), features=hs_features)
                                                      for s, n in (("train", 24), ("validation", 8), ("test", 8))}})
    # tau/commonsense_qa
    csqa_features = Features({"id": Value("string"), "question": Value("string"), "question_concept": Value("string"),
                              "choices": {"label": List(Value("string")), "text": List(Value("string"))},
                              "answerKey": Value("string")})
    _write_repo(root, "tau/commonsense_qa", {"default": {s: Dataset.from_dict(
        {"id": [f"c{i}" for i in range(n)], "question": [sentence(rng, "en") + "?" for _ in range(n)],
         "question_concept": ["c"] * n, "choices": [{"label": list("ABCDE"), "text": [sentence(rng, "en", 2)
                                                                                      for _ in range(5)]}
                                                    for _ in range(n)],
         "answerKey": ["" if s == "test" else rng.choice("ABCDE") for _ in range(n)]}, features=csqa_features)
        for s, n in SIZES.items()}})
    # allenai/social_i_qa and allenai/cosmos_qa: their refs/convert/parquet branch
    siqa = Features({k: Value("string") for k in ("context", "question", "answerA", "answerB", "answerC", "label")})
    _write_repo(root, "allenai/social_i_qa", {"default": {s: Dataset.from_dict(
        {"context": [sentence(rng, "en") for _ in range(n)], "question": [sentence(rng, "en", 3) + "?" for _ in range(n)],
         **{f"answer{c}": [sentence(rng, "en", 2) for _ in range(n)] for c in "ABC"},
         "label": [str(rng.randint(1, 3)) for _ in range(n)]}, features=siqa)
        for s, n in (("train", 16), ("validation", 8))}}, convert_branch=True)
    cosmos = Features({"id": Value("string"), "context": Value("string"), "question": Value("string"),
                       **{f"answer{k}": Value("string") for k in range(4)}, "label": Value("int32")})
    _write_repo(root, "allenai/cosmos_qa", {"default": {s: Dataset.from_dict(
        {"id": [f"k{i}" for i in range(n)], "context": [sentence(rng, "en") for _ in range(n)],
         "question": [sentence(rng, "en", 3) + "?" for _ in range(n)],
         **{f"answer{k}": [sentence(rng, "en", 2) for _ in range(n)] for k in range(4)},
         "label": [rng.randrange(4) for _ in range(n)]}, features=cosmos)
        for s, n in (("train", 16), ("validation", 8), ("test", 8))}}, convert_branch=True)
    return root


def build_translations(root: Path, languages: list[str], seed: int = 1, shared: Path | None = None) -> Path:
    """XTREME's translations bucket for MNLI (XNLI/translate-train) and SQuAD (translate-train/dev): in each row the
    English pair stands first, then the translation, then the label, as on today's files. SQuAD's translations keep
    the English questions' ids, and its translate-dev, a translation of SQuAD v1.1 dev, holds XQuAD's questions
    too (XQuAD is part of that dev set): here XQuAD's own translation of them where ``shared`` has it."""
    rng = random.Random(seed)
    english = [(sentence(rng, "en"), sentence(rng, "en"), rng.choice(["entailment", "neutral", "contradictory"]))
               for _ in range(40)]
    for lang in languages:
        path = root / "XNLI" / "translate-train" / f"en-{lang}-translated.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{a}\t{b}\t{sentence(rng, lang)}\t{sentence(rng, lang)}\t{label}" for a, b, label in english]
        lines.append("a malformed row\twith three\tfields")  # such rows exist upstream: skipped
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for split, n in (("train", 24), ("dev", 8)):
            rows = _qa_rows(rng, lang, n, f"sq-{'validation' if split == 'dev' else split}")  # the English ids
            if split == "dev":
                english_ids = (_real_xquad(shared, "en", 24) or {"id": [f"xq-en-{i}" for i in range(8)]})["id"]
                xquad = _real_xquad(shared, lang, len(english_ids)) or _qa_rows(rng, lang, len(english_ids), "x")
                for column in ("context", "question", "answers"):
                    rows[column] += xquad[column]
                rows["id"] += list(english_ids)
                rows["title"] += ["xquad article"] * len(english_ids)
            doc = _squad_document(rows)
            out = root / "SQuAD" / f"translate-{split}" / f"squad.translate.{split}.en-{lang}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return root


def place_xtreme_udpos(data_root: Path, langs: list[str], seed: int = 5) -> None:
    """download/udpos/{split}-<lang>.tsv as google-research/xtreme's download_data.sh writes them (word<TAB>tag, a
    blank line between sentences): what a study reads for languages whose hub config merges other treebanks."""
    rng = random.Random(seed)
    for lang in langs:
        for split in ("train", "dev", "test"):
            if split in UDPOS_MISSING_SPLITS.get(lang, ()):
                continue
            path = data_root / TASKS["udpos"].path(split, lang)
            path.parent.mkdir(parents=True, exist_ok=True)
            sentences = [sentence(rng, lang, rng.randint(3, 7)).split() for _ in range(12)]
            path.write_text("".join("".join(f"{w}\t{rng.choice(UPOS)}\n" for w in words) + "\n"
                                    for words in sentences), encoding="utf-8")


def build_bucc(data_root: Path, seed: int = 2) -> None:
    """download/bucc2018/<lang>-en.<split>.{<lang>,en,gold} (id<TAB>sentence; gold id<TAB>id)."""
    rng = random.Random(seed)
    directory = data_root / "download" / "bucc2018"
    directory.mkdir(parents=True, exist_ok=True)
    for lang in XTREME_LANGUAGES["bucc2018"].split(","):
        for split in ("dev", "test"):
            src = {f"{lang}-{split}-{i:06d}": sentence(rng, lang) for i in range(12)}
            en = {f"en-{split}-{i:06d}": sentence(rng, "en") for i in range(14)}
            gold = [(f"{lang}-{split}-{i:06d}", f"en-{split}-{i:06d}") for i in range(6)]
            base = directory / f"{lang}-en.{split}"
            for ext, rows in ((lang, src), ("en", en)):
                base.with_name(base.name + f".{ext}").write_text("".join(f"{k}\t{v}\n" for k, v in rows.items()),
                                                                 encoding="utf-8")
            base.with_name(base.name + ".gold").write_text("".join(f"{a}\t{b}\n" for a, b in gold), encoding="utf-8")


def build_model_mirror(root: Path, corpus_text: list[str], hub_id: str = "FacebookAI/xlm-roberta-base") -> Path:
    """A tiny XLM-R-format checkpoint under <root>/<hub id>, as `huggingface-cli download` would leave a real one."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from ray_xt.micro.pretrain import train_tokenizer

    out = root / hub_id
    out.mkdir(parents=True, exist_ok=True)
    corpus = out.parent / "corpus.txt"
    corpus.write_text("\n".join(corpus_text) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer([corpus], out, vocab_size=2500, seed=0)
    corpus.unlink()
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, type_vocab_size=1,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    XLMRobertaForMaskedLM(config).save_pretrained(str(out))
    return out


def corpus_for_tokenizer(shared: Path | None, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    langs = sorted({lang for task in XTREME_LANGUAGES.values() for lang in task.split(",")} | {"en"})
    text = [sentence(rng, lang, 8) for lang in langs for _ in range(20)]
    if shared:
        for path in sorted((shared / "tatoeba").glob("tatoeba.*")):
            text += path.read_text(encoding="utf-8").splitlines()[:40]
        for path in sorted((shared / "xquad").glob("xquad.*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            text += [p["context"] for a in doc["data"][:2] for p in a["paragraphs"][:3]]
    return text


def place_translated_choices(data_root: Path, task: str, languages: list[str], seed: int = 4) -> None:
    """intermediate/<task>/{train,dev}-<lang>.jsonl where `ray-xt translate` writes them (JSON lines {id, context,
    question, choices, label}): the second route to target-language intermediate data."""
    rng = random.Random(seed)
    for lang in languages:
        for split, n in (("train", 16), ("dev", 8)):
            path = data_root / "intermediate" / task / f"{split}-{lang}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [{"id": f"{split}-{i}", "context": sentence(rng, lang), "question": "",
                     "choices": [sentence(rng, lang, 4) for _ in range(4)], "label": rng.randrange(4)}
                    for i in range(n)]
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
