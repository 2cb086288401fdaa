"""Every task ray_xt knows: family, labels, metric, languages, file layout and hub source.

Target-task languages are XTREME's lists, exactly as the official ``evaluate.py``
(google-research/xtreme) scores them; intermediate tasks are English (their
target-language versions come from XTREME's translations where those exist,
``ray_xt/translations.py``, else from ``ray-xt translate``, ``ray_xt/translate.py``).  On the
micro world every task exists in every world language.

File layouts are those ``scripts/download_data.sh`` of google-research/xtreme
leaves under ``download/``; intermediate tasks live under ``intermediate/<task>``
in the formats ray_xt reads (the micro world writes both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

FAMILIES = ("pair_classification", "multiple_choice", "tagging", "span_qa", "retrieval", "masked_lm")


@dataclass(frozen=True)
class HubSource:
    """Where the real data lives on the HF hub. ``config``/``split`` may hold ``{lang}``, ``{split}`` fields."""

    dataset: str
    config: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "dev": "validation", "test": "test"})
    language_names: dict[str, str] | None = None  # for configs named by language name (udpos.English)
    # a branch or tag other than main: script-only repos load from the hub's parquet export, "refs/convert/parquet"
    revision: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: str  # one of FAMILIES
    role: str  # target | intermediate
    metric: str  # accuracy | f1 | em_f1 | bucc_f1
    languages: tuple[str, ...]  # evaluation languages on the real benchmark
    layout: Callable[[str, str], str]  # (split, lang) -> file path relative to the data root
    labels: tuple[str, ...] = ()  # classification labels (pair) or the tag set (tagging; read from data if empty)
    hub: HubSource | None = None
    train_task: str | None = None  # trains on another task's English data (XQuAD/MLQA on SQuAD)
    eval_split: str = "dev"  # split scored zero-shot in every language (XQuAD ships only test)
    submission_split: str = "test"  # split predicted for the XTREME submission (TyDiQA-GoldP: its dev set)
    num_choices: int = 0  # multiple choice
    # splits a language does not have at all (upstream), e.g. UD-POS Thai has a test set only
    missing_splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # tasks whose examples this task's evaluation set was drawn from, under the same ids (ray_xt.provenance)
    drawn_from: tuple[str, ...] = ()

    def has_split(self, split: str, lang: str) -> bool:
        return split not in self.missing_splits.get(lang, ())

    def eval_split_for(self, lang: str) -> str:
        """The split scored zero-shot in ``lang``: ``eval_split``, or test where the language has no such split
        (XTREME scores every language on test)."""
        return self.eval_split if self.has_split(self.eval_split, lang) else "test"

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def submission_suffix(self) -> str:
        return "json" if self.family == "span_qa" else "tsv"

    def path(self, split: str, lang: str) -> str:
        return self.layout(split, lang)


def _tsv(directory: str) -> Callable[[str, str], str]:
    return lambda split, lang: f"{directory}/{split}-{lang}.tsv"


def _jsonl(directory: str) -> Callable[[str, str], str]:
    return lambda split, lang: f"{directory}/{split}-{lang}.jsonl"


def _squad(split: str, lang: str) -> str:
    return f"intermediate/squad/{split}-{lang}.json"


def _xquad(split: str, lang: str) -> str:
    return f"download/xquad/xquad.{lang}.json"


def _mlqa(split: str, lang: str) -> str:
    return f"download/mlqa/MLQA_V1/{split}/{split}-context-{lang}-question-{lang}.json"


def _tydiqa(split: str, lang: str) -> str:
    # xtreme's utils_preprocess.py (tydiqa_preprocess) splits the train file per language and renames the dev files
    folder = "tydiqa-goldp-v1.1-train" if split == "train" else "tydiqa-goldp-v1.1-dev"
    return f"download/tydiqa/{folder}/tydiqa.goldp.{lang}.{split}.json"


def _tatoeba(split: str, lang: str) -> str:
    code = TATOEBA_ISO3.get(lang, lang)  # LASER names files by ISO 639-3 code
    return f"download/tatoeba/tatoeba.{code}-eng.{code}"  # and the .eng side beside it


def _bucc(split: str, lang: str) -> str:
    return f"download/bucc2018/{lang}-en.{split}.{lang}"  # and .en, .gold beside it


# XTREME's evaluation languages (google-research/xtreme evaluate.py, TASK2LANGS).
XTREME_LANGUAGES: dict[str, str] = {
    "pawsx": "de,en,es,fr,ja,ko,zh",
    "xnli": "ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh",
    "panx": "ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,my,"
            "zh,kk,tr,et,fi,hu",
    "udpos": "af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh",
    "bucc2018": "de,fr,ru,zh",
    "tatoeba": "ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,tr,"
               "et,fi,hu",
    "xquad": "en,es,de,el,ru,tr,ar,vi,th,zh,hi",
    "mlqa": "en,es,de,ar,hi,vi,zh",
    "tydiqa": "en,ar,bn,fi,id,ko,ru,sw,te",
}
# google/xtreme names its udpos configs by language name.
UD_NAMES = dict(
    af="Afrikaans", ar="Arabic", bg="Bulgarian", de="German", el="Greek", en="English", es="Spanish",
    et="Estonian", eu="Basque", fa="Persian", fi="Finnish", fr="French", he="Hebrew", hi="Hindi", hu="Hungarian",
    id="Indonesian", it="Italian", ja="Japanese", kk="Kazakh", ko="Korean", mr="Marathi", nl="Dutch",
    pt="Portuguese", ru="Russian", ta="Tamil", te="Telugu", th="Thai", tl="Tagalog", tr="Turkish", ur="Urdu",
    vi="Vietnamese", yo="Yoruba", zh="Chinese",
)
# Tatoeba files use ISO 639-3 codes (LASER naming); XTREME reports 2-letter codes.
TATOEBA_ISO3 = dict(
    ar="ara", he="heb", vi="vie", id="ind", jv="jav", tl="tgl", eu="eus", ml="mal", ta="tam", te="tel", af="afr",
    nl="nld", de="deu", el="ell", bn="ben", hi="hin", mr="mar", ur="urd", fa="pes", fr="fra", it="ita", pt="por",
    es="spa", bg="bul", ru="rus", ja="jpn", ka="kat", ko="kor", th="tha", sw="swh", zh="cmn", kk="kaz", tr="tur",
    et="est", fi="fin", hu="hun",
)


# UD 2.5 has no dev set for Kazakh and only a test set for Tagalog, Thai and Yoruba (google/xtreme's udpos
# configs; xtreme's download_data.sh writes no such files either): XTREME evaluates them on test.
UDPOS_MISSING_SPLITS: dict[str, tuple[str, ...]] = {
    "kk": ("dev",), "tl": ("train", "dev"), "th": ("train", "dev"), "yo": ("train", "dev"),
}


# google/xtreme's loader builds udpos.<Name> from every UD 2.5 folder matching "*_<Name>*" (its _split_generators),
# where XTREME's download_data.sh groups treebank files by their language code (el_*, zh_*, fr_*) and its
# preprocessing drops sentences without text. These configs therefore hold another language's treebanks, and are
# refused (ray_xt.sources): Greek gains Ancient Greek (card: train 28,152 = GDT 1,662 + PROIEL 11,476 + Perseus
# 15,014); Chinese gains Classical Chinese Kyoto (card: train 18,998; GSD's 3,997 + Kyoto's); French gains Old French
# SRCMF and keeps French-FTB's text-less sentences (card: train 47,308, against ~18,600 in XTREME's file). Card sizes
# are the hub's dataset card (google/xtreme); the treebank sizes are UD 2.5's own statistics.
UDPOS_HUB_MERGED = {"el": "Ancient Greek (PROIEL, Perseus)", "zh": "Classical Chinese (Kyoto)",
                    "fr": "Old French (SRCMF) and French-FTB's sentences without text"}


def _langs(task: str) -> tuple[str, ...]:
    return tuple(XTREME_LANGUAGES[task].split(","))


_NLI = ("entailment", "neutral", "contradiction")
MLM_CORPUS = "mlm"  # the task name of the `mlm` condition's text
_PARA = ("0", "1")
_EN = ("en",)
_QA_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        # ---- XTREME target tasks
        TaskSpec("xnli", "pair_classification", "target", "accuracy", _langs("xnli"), _tsv("download/xnli"), _NLI,
                 HubSource("facebook/xnli", "{lang}")),
        TaskSpec("pawsx", "pair_classification", "target", "accuracy", _langs("pawsx"), _tsv("download/pawsx"), _PARA,
                 HubSource("google-research-datasets/paws-x", "{lang}")),
        TaskSpec("udpos", "tagging", "target", "f1", _langs("udpos"), _tsv("download/udpos"),
                 hub=HubSource("google/xtreme", "udpos.{lang}", language_names=UD_NAMES),
                 missing_splits=UDPOS_MISSING_SPLITS),
        TaskSpec("panx", "tagging", "target", "f1", _langs("panx"), _tsv("download/panx"),
                 hub=HubSource("google/xtreme", "PAN-X.{lang}")),
        # XQuAD is 1,190 questions of SQuAD v1.1's dev set, under their SQuAD ids, and their translations
        # (google-deepmind/xquad README; the same ids in every language)
        TaskSpec("xquad", "span_qa", "target", "em_f1", _langs("xquad"), _xquad,
                 hub=HubSource("google/xquad", "xquad.{lang}", {"test": "validation"}), train_task="squad",
                 eval_split="test", drawn_from=("squad",)),
        TaskSpec("mlqa", "span_qa", "target", "em_f1", _langs("mlqa"), _mlqa,
                 # facebook/mlqa is a loading script on main (refused by datasets >= 4); google/xtreme's
                 # MLQA.<l>.<l> configs are parquet with the same columns
                 hub=HubSource("google/xtreme", "MLQA.{lang}.{lang}", {"dev": "validation", "test": "test"}),
                 train_task="squad"),
        TaskSpec("tydiqa", "span_qa", "target", "em_f1", _langs("tydiqa"), _tydiqa,
                 hub=HubSource("google/xtreme", "tydiqa", {"train": "train", "dev": "validation"}),
                 submission_split="dev"),
        TaskSpec("bucc2018", "retrieval", "target", "bucc_f1", _langs("bucc2018"), _bucc,
                 hub=None),  # the hub copies lack the gold alignments: local download only
        TaskSpec("tatoeba", "retrieval", "target", "accuracy", _langs("tatoeba"), _tatoeba,
                 hub=HubSource("google/xtreme", "tatoeba.{lang}", {"test": "validation"}), eval_split="test"),
        # ---- the paper's English intermediate tasks
        TaskSpec("mnli", "pair_classification", "intermediate", "accuracy", _EN, _tsv("intermediate/mnli"), _NLI,
                 HubSource("nyu-mll/glue", "mnli", {"train": "train", "dev": "validation_matched"}),
                 ),  # target-language versions: ray_xt.translations (XTREME's XNLI translate-train)
        TaskSpec("anli", "pair_classification", "intermediate", "accuracy", _EN, _tsv("intermediate/anli"), _NLI,
                 # ANLI alone, all three rounds (162,865 training pairs, TRAIN_SIZES), not the paper's possible
                 # "ANLI+" (with MNLI and SNLI), which no stored source confirms (../shared/PAPER.md)
                 HubSource("facebook/anli", None, {"train": "train_r1+train_r2+train_r3",
                                                   "dev": "dev_r1+dev_r2+dev_r3"})),
        TaskSpec("qqp", "pair_classification", "intermediate", "accuracy", _EN, _tsv("intermediate/qqp"), _PARA,
                 HubSource("nyu-mll/glue", "qqp", {"train": "train", "dev": "validation"}),
                 ),  # no translation of QQP exists (PAWS-X translate-train is PAWS-X): ray-xt translate
        TaskSpec("squad", "span_qa", "intermediate", "em_f1", _EN, _squad,
                 hub=HubSource("rajpurkar/squad", None, {"train": "train", "dev": "validation"}),
                 ),  # target-language versions: ray_xt.translations (XTREME's SQuAD translate-train/dev)
        TaskSpec("hellaswag", "multiple_choice", "intermediate", "accuracy", _EN, _jsonl("intermediate/hellaswag"),
                 hub=HubSource("Rowan/hellaswag", None, {"train": "train", "dev": "validation"}), num_choices=4),
        TaskSpec("cosmosqa", "multiple_choice", "intermediate", "accuracy", _EN, _jsonl("intermediate/cosmosqa"),
                 # a loading script on main: the hub's parquet export (unverified for this repo, see README)
                 hub=HubSource("allenai/cosmos_qa", None, {"train": "train", "dev": "validation"},
                               revision="refs/convert/parquet"), num_choices=4),
        TaskSpec("commonsenseqa", "multiple_choice", "intermediate", "accuracy", _EN,
                 _jsonl("intermediate/commonsenseqa"),
                 hub=HubSource("tau/commonsense_qa", None, {"train": "train", "dev": "validation"}), num_choices=5),
        TaskSpec("socialiqa", "multiple_choice", "intermediate", "accuracy", _EN, _jsonl("intermediate/socialiqa"),
                 # a loading script on main; its parquet export loads
                 hub=HubSource("allenai/social_i_qa", None, {"train": "train", "dev": "validation"},
                               revision="refs/convert/parquet"), num_choices=3),
        TaskSpec("ccg", "tagging", "intermediate", "f1", _EN, _tsv("intermediate/ccg"),
                 hub=None),  # CCGbank is LDC-licensed: a local copy converted to token<TAB>supertag TSV
        # ---- the `mlm` condition's text: one file of plain lines per language (intermediate.mlm_corpus, or the
        # micro world's own monolingual corpora); trained beside an intermediate task, never a task of its own
        TaskSpec(MLM_CORPUS, "masked_lm", "corpus", "none", (), lambda split, lang: f"mlm/{split}-{lang}.txt"),
    )
}


# Approximate English training-set sizes (examples) of the real tasks, for `ray-xt plan`'s cost estimates.
TRAIN_SIZES: dict[str, int] = {
    "xnli": 392_702, "pawsx": 49_401, "udpos": 12_543, "panx": 20_000, "xquad": 87_599, "mlqa": 87_599,
    "tydiqa": 3_696, "mnli": 392_702, "anli": 162_865, "qqp": 363_846, "squad": 87_599, "hellaswag": 39_905,
    "cosmosqa": 25_262, "commonsenseqa": 9_741, "socialiqa": 33_410, "ccg": 39_604,
}


# (intermediate task, target task) pairs whose intermediate data is the target task's own English training set
# (jiant's guides/benchmarks/xtreme.md: XNLI trains on MNLI, XQuAD and MLQA on SQuAD v1.1). Such a pair is not
# transfer from another task: "English intermediate" is the same data twice, and "target-language intermediate"
# is translate-train before English fine-tuning. The plan and the report show them apart.
SAME_TRAINING_DATA: dict[tuple[str, str], str] = {
    ("mnli", "xnli"): "XNLI's English training set is MNLI",
    ("squad", "xquad"): "XQuAD trains on SQuAD v1.1",
    ("squad", "mlqa"): "MLQA trains on SQuAD v1.1",
}


def shared_training_data(intermediate: str, target: str) -> str | None:
    """Why (intermediate, target) is not a transfer pair, or None when it is one."""
    return SAME_TRAINING_DATA.get((intermediate, target))
