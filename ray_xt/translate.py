"""Target-language intermediate data by machine translation: a Ray Data batch job over the cluster's GPUs.

For intermediate tasks without an XTREME translate-train set, ``translate_task``
renders the English training (and dev) examples into each target language with
any ``transformers`` sequence-to-sequence MT model (MarianMT, M2M100, NLLB...),
as a ``map_batches`` job of translator actors (one model per actor, ``num_gpus``
each), and writes the results where the loaders expect translated files:
``intermediate/<task>/<split>-<lang>.*``.  A directory of translations made
elsewhere is the other source: put the files there and nothing is translated.

Per family: pair classification translates both sentences; multiple choice
the context, question and every choice; span QA the context, question and
answer, keeping an example only if the translated answer occurs verbatim in the
translated context (the usual translate-train filter, counted and reported).
Tagging data cannot be translated without word alignment and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray_xt.data import write_examples
from ray_xt.families import DataError
from ray_xt.tasks.registry import TASKS, TaskSpec

TRANSLATABLE = ("pair_classification", "multiple_choice", "span_qa")


@dataclass
class TranslationResult:
    lang: str
    split: str
    path: Path
    examples: int
    dropped: int  # QA examples whose translated answer is not in the translated context


def text_fields(task: TaskSpec, example: dict) -> list[str]:
    if task.family == "pair_classification":
        return [example["sentence1"], example["sentence2"]]
    if task.family == "multiple_choice":
        return [example["context"], example["question"], *example["choices"]]
    if task.family == "span_qa":
        return [example["context"], example["question"], *(a["text"] for a in example["answers"][:1])]
    raise DataError(f"task {task.name!r} ({task.family}) cannot be machine-translated: only "
                    f"{', '.join(TRANSLATABLE)} tasks can (tagging needs word alignment)")


def rebuild(task: TaskSpec, example: dict, texts: list[str]) -> dict | None:
    if task.family == "pair_classification":
        return {**example, "sentence1": texts[0], "sentence2": texts[1]}
    if task.family == "multiple_choice":
        return {**example, "context": texts[0], "question": texts[1], "choices": texts[2:]}
    context, question, answer = texts[0], texts[1], texts[2] if len(texts) > 2 else ""
    start = context.find(answer) if answer else -1
    if start < 0:
        return None
    return {**example, "context": context, "question": question, "answers": [{"text": answer, "answer_start": start}]}


class Translator:
    """A Ray Data actor: one MT model, translating batches of {"i", "text"} rows into one language."""

    def __init__(self, model_path: str, lang: str, lang_token: str | None, max_length: int, num_beams: int):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(model_path).to(self.device).eval()
        self.max_length, self.num_beams = max_length, num_beams
        self.forced_bos = None
        if lang_token:  # multilingual models pick the output language by a forced first token (M2M100, NLLB)
            token = lang_token.format(lang=lang)
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == self.tokenizer.unk_token_id:
                raise DataError(f"the MT model at {model_path} has no language token {token!r} for {lang!r}")
            self.forced_bos = token_id

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_length, num_beams=self.num_beams,
                                      forced_bos_token_id=self.forced_bos)
        batch["translation"] = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return batch


def translate_task(
    root: Path, task_name: str, langs: list[str], model_path: str, splits: tuple[str, ...] = ("train", "dev"),
    lang_token: str | None = None, batch_size: int = 32, workers: int = 1, gpus_per_worker: float = 0,
    max_length: int = 256, num_beams: int = 1, max_examples: int | None = None, overwrite: bool = False,
) -> list[TranslationResult]:
    """Translate a task's English splits into ``langs`` with a Ray Data job; existing files are kept."""
    import ray

    from ray_xt.data import read_examples

    task = TASKS[task_name]
    if task.family not in TRANSLATABLE:
        text_fields(task, {})  # raises the explanation
    results = []
    for split in splits:
        examples = read_examples(root, task, split, ["en"])[:max_examples]
        items: list = []
        owners: list = []
        for e_index, example in enumerate(examples):
            for text in text_fields(task, example):
                items.append({"i": len(items), "text": text})
                owners.append(e_index)
        for lang in langs:
            path = Path(root) / task.path(split, lang)
            if path.exists() and not overwrite:
                continue  # a provided (or earlier) translation wins
            ds = ray.data.from_items(items).map_batches(
                Translator, fn_constructor_kwargs={"model_path": model_path, "lang": lang, "lang_token": lang_token,
                                                   "max_length": max_length, "num_beams": num_beams},
                batch_size=batch_size, concurrency=workers, num_gpus=gpus_per_worker or None,
            )
            translated = {row["i"]: row["translation"] for row in ds.take_all()}
            per_example: list[list[str]] = [[] for _ in examples]
            for i, owner in enumerate(owners):
                per_example[owner].append(translated[i])
            rebuilt = [rebuild(task, e, t) for e, t in zip(examples, per_example)]
            kept = [r for r in rebuilt if r is not None]
            write_examples(path, task, kept)
            results.append(TranslationResult(lang, split, path, len(kept), len(rebuilt) - len(kept)))
    return results
