"""The entry function of the evaluation assets: `evaluate_partition(profile, lake, stage_no, partition, ...)`
generates answers to MMMU with one stage's trained model and scores them exactly like the official code.

A partition is a question set: `eng_Latn` (MMMU as downloaded), a target language (MMMU Multi: questions and
options translated, the answer letter unchanged) or `back_<lang>` (MMMU Multi translated back into English:
the paper's Table 1 check). Prompts are the official ones; the image is `image_1` (MiniGPT-v2 reads one image).

Predictions are appended to `predictions.jsonl` batch by batch as they are generated, under a key made of
the stage's data version, the questions' digest and the decoding settings: a killed evaluation resumes
where it stopped, and an unchanged checkpoint with unchanged questions generates nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, Profile
from pipeline.lake import Lake, build_manifest, write_text_atomic
from pipeline.rows import Row, read_parquet, read_rows
from pipeline.stats import StepResult, StepStats
from pipeline.evaluate.prompts import build_prompt, choices_for, parse_options
from pipeline.evaluate.scoring import score_samples
from pipeline.evaluate.subjects import subject_of_id
from pipeline.training.run import FINAL_DIR, STAGE_DIR, WEIGHTS_FILE, model_settings, read_final, stage_dir

EVAL_DIR = "evaluation"
PREDICTIONS, RESULTS, KEY_FILE = "predictions.jsonl", "results.json", "key.json"
PROMPT_VERSION = "1"
SOURCE_LANG = "eng_Latn"
BACK = "back_"

Log = Callable[[str], None]


def eval_partitions(profile: Profile) -> list[str]:
    """English, the target languages, and (with back-translation) `back_<lang>` for each of them."""
    langs = [lang for lang in profile.languages if lang != SOURCE_LANG]
    back = [BACK + lang for lang in langs] if profile.evaluation.back_translation else []
    return [SOURCE_LANG, *langs, *back]


def load_questions(profile: Profile, lake: Lake, partition: str) -> list[Row]:
    """The MMMU rows of a partition (raw English, translated, or back-translated), in file order."""
    from pipeline.translation.datasets import partition_folder

    if partition == SOURCE_LANG:
        path = lake.raw("mmmu", "rows.parquet")
        if not path.exists():
            raise ConfigError(f"{path} is missing: materialise the `mmmu` asset first")
        rows = read_parquet(path)
    else:
        dataset, lang = ("mmmu_back", partition[len(BACK):]) if partition.startswith(BACK) else ("mmmu", partition)
        n = profile.translation.chunk_count("mmmu")
        rows = []
        for chunk in range(n):
            folder = partition_folder(lake, dataset, lang, chunk, n)
            if not folder.exists():
                asset = "mmmu_backtranslated" if dataset == "mmmu_back" else "translated_mmmu"
                raise ConfigError(f"{folder} is missing: materialise `{asset}` for {lang} first")
            rows += read_rows(folder)
    return sorted(rows, key=lambda r: str(r["id"]))  # the bucket order of the lake is not the file order


def questions_digest(rows: list[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        image = (r.get("image_1") or {}).get("bytes") or b""
        h.update(json.dumps([r["id"], r["question"], r["options"], r["answer"], r["question_type"]]).encode())
        h.update(hashlib.sha256(image).digest())
    return h.hexdigest()[:24]


class Generator:
    """One stage's trained model, loaded once, answering prompts in batches (greedy)."""

    def __init__(self, profile: Profile, lake: Lake, stage_no: int, runs: str = STAGE_DIR):
        import torch

        from pipeline.model.minigpt import build_model
        from pipeline.model.weights import load_trainable

        settings = model_settings(profile, lake)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.model = build_model(settings)
        load_trainable(self.model, stage_dir(lake, stage_no, runs) / FINAL_DIR / WEIGHTS_FILE)
        self.model.eval()
        if torch.cuda.is_available():
            self.model.cuda()

    def __call__(self, prompts: list[str], images: list[bytes | None], max_new_tokens: int) -> list[str]:
        conversations = [[{"from": "human", "value": p}] for p in prompts]
        return self.model.generate(conversations, images, max_new_tokens=max_new_tokens)


def _read_predictions(path: Path) -> dict[str, str]:
    """Predictions stored so far; a line cut by a kill (the last one) is dropped and generated again."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        out[rec["id"]] = rec["response"]
    return out


def _sample(row: Row, response: str, partition: str) -> dict[str, Any]:
    options = parse_options(row["options"], row["id"])
    index2ans, letters = choices_for(options)
    return {"id": row["id"], "question_type": row["question_type"], "answer": row["answer"],
            "all_choices": letters if row["question_type"] == "multiple-choice" else [],
            "index2ans": index2ans, "response": response, "subject": row.get("subject") or subject_of_id(row["id"])}


def evaluate_partition(profile: Profile, lake: Lake, stage_no: int, partition: str,
                       generator: Callable[[], Callable] | None = None, log: Log = print,
                       after_batch: Callable[[int], None] | None = None, runs: str = STAGE_DIR,
                       out_dir: str = EVAL_DIR) -> StepResult:
    """Answer and score one question set with stage `stage_no`'s model; see the module docstring.

    `generator()` returns the model's batch function (the resource's cached `Generator`); it is called only
    when something is left to generate. `after_batch(n_done)` runs after each stored batch (tests kill there).
    `runs`/`out_dir`: the lake folders of the trained stages and of the predictions (ablations use others)."""
    settings = profile.evaluation
    trained = read_final(lake, stage_no, runs)
    if not trained or not (stage_dir(lake, stage_no, runs) / FINAL_DIR / WEIGHTS_FILE).is_file():
        raise ConfigError(f"stage {stage_no} has no trained weights under {stage_dir(lake, stage_no, runs) / FINAL_DIR}: "
                          f"materialise `stage{stage_no}` first")
    rows = load_questions(profile, lake, partition)
    key = {"stage": stage_no, "weights": trained["data_version"], "questions": questions_digest(rows),
           "max_new_tokens": settings.max_new_tokens, "prompt": PROMPT_VERSION}
    out = Path(lake.path(*out_dir.split("/"), f"stage{stage_no}", partition).path)
    out.mkdir(parents=True, exist_ok=True)
    stats = StepStats(f"evaluate_stage{stage_no}", unit="questions")
    with stats.timed():
        stored_key = json.loads((out / KEY_FILE).read_text()) if (out / KEY_FILE).is_file() else None
        if stored_key != key:  # another checkpoint or other questions: earlier predictions do not count
            (out / PREDICTIONS).unlink(missing_ok=True)
            write_text_atomic(out / KEY_FILE, json.dumps(key))
        done = _read_predictions(out / PREDICTIONS)
        todo = [r for r in rows if r["id"] not in done]
        stats.cache_hits = len(rows) - len(todo)
        if todo:
            log(f"stage {stage_no} [{partition}]: {len(todo)} of {len(rows)} questions to answer")
            answer = generator() if generator is not None else Generator(profile, lake, stage_no, runs)
            # rewrite what was read (drops a torn last line), then append batch by batch
            write_text_atomic(out / PREDICTIONS, "".join(
                json.dumps({"id": i, "response": r}, ensure_ascii=False) + "\n" for i, r in done.items()))
            with open(out / PREDICTIONS, "a", encoding="utf-8") as f:
                for start in range(0, len(todo), settings.batch_size):
                    batch = todo[start:start + settings.batch_size]
                    prompts = [build_prompt(r["question"], r["options"], r["question_type"]) for r in batch]
                    images = [(r.get("image_1") or {}).get("bytes") for r in batch]
                    for r, response in zip(batch, answer(prompts, images, settings.max_new_tokens)):
                        done[r["id"]] = response
                        f.write(json.dumps({"id": r["id"], "response": response}, ensure_ascii=False) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                    stats.model_calls += len(batch)
                    if after_batch is not None:
                        after_batch(len(done))
        result = score_samples([_sample(r, done[r["id"]], partition) for r in rows])
    stats.items = stats.rows_in = stats.rows_kept = len(rows)
    stats.counters.update(accuracy=round(result.overall.acc, 4), correct=result.overall.correct,
                          total=result.overall.total, warnings=list(result.warnings),
                          by_subject={k: round(t.acc, 4) for k, t in result.subjects.items()},
                          by_discipline={k: round(t.acc, 4) for k, t in result.disciplines.items()})
    stats.sample = [{"id": j.id, "answer": j.answer, "parsed": j.parsed, "response": j.response}
                    for j in result.items[:5]]
    report = {"stage": stage_no, "partition": partition, "key": key, **result.to_dict(),
              "parsed": [j.to_dict() for j in result.items]}
    write_text_atomic(out / RESULTS, json.dumps(report, ensure_ascii=False, indent=1))
    manifest = build_manifest(out, {PREDICTIONS: len(rows), RESULTS: None},
                              extra={"accuracy": result.overall.acc, "stage": stage_no, "partition": partition})
    return StepResult(str(out), manifest, stats)


def read_results(lake: Lake, stage_no: int, partition: str) -> dict[str, Any] | None:
    path = Path(lake.path(EVAL_DIR, f"stage{stage_no}", partition, RESULTS).path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
