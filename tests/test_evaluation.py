"""Evaluation of a stage on MMMU: official prompts, per-sample predictions that survive a kill, nothing
generated again for an unchanged checkpoint, scores that follow the answers, and the report's tables."""
from __future__ import annotations

import json

import pytest

from pipeline.evaluate.prompts import build_prompt
from pipeline.evaluate.report import build_report
from pipeline.evaluate.run import PREDICTIONS, evaluate_partition, load_questions
from pipeline.lake import write_text_atomic
from pipeline.raw.ingest import ingest_source
from pipeline.training.run import FINAL_DIR, TRAIN_FILE, WEIGHTS_FILE, stage_dir


class Answerer:
    """Answers with the right letter for a chosen set of ids and with chatter otherwise; records each call
    (stands in for the model so the test can say exactly which questions were generated)."""

    def __init__(self, rows, right: set[str]):
        self.gold = {r["id"]: r["answer"] for r in rows}
        # the toy questions repeat; a question with its image is unique
        self.by_input = {(build_prompt(r["question"], r["options"], r["question_type"]), r["image_1"]["bytes"]): r["id"]
                         for r in rows}
        assert len(self.by_input) == len(rows)
        self.right = right
        self.asked: list[str] = []

    def __call__(self, prompts, images, max_new_tokens):
        out = []
        for p, image in zip(prompts, images):
            rid = self.by_input[(p, image)]
            self.asked.append(rid)
            out.append(f"({self.gold[rid]})" if rid in self.right else "I am not sure at all about this one")
        return out


def _trained(lake, stage_no: int, version: str) -> None:
    final = stage_dir(lake, stage_no) / FINAL_DIR
    final.mkdir(parents=True, exist_ok=True)
    (final / WEIGHTS_FILE).write_bytes(b"weights")
    write_text_atomic(final / TRAIN_FILE, json.dumps({"stage": stage_no, "steps": 1, "data_version": version}))


@pytest.fixture(scope="module")
def lake_with_mmmu(toy_lake):
    profile, lake = toy_lake
    ingest_source("mmmu", profile, lake, log=lambda _: None)
    return profile.model_copy(update={"evaluation": profile.evaluation.model_copy(update={"batch_size": 4})}), lake


def test_predictions_resume_after_a_kill_and_are_not_generated_again(lake_with_mmmu):
    profile, lake = lake_with_mmmu
    _trained(lake, 1, "v1")
    rows = load_questions(profile, lake, "eng_Latn")
    mc = [r for r in rows if r["question_type"] == "multiple-choice"]
    right = {r["id"] for r in mc[: len(mc) // 2]}
    answer = Answerer(rows, right)

    class Killed(Exception):
        pass

    def kill(done: int) -> None:
        if done >= 8:
            raise Killed()

    with pytest.raises(Killed):
        evaluate_partition(profile, lake, 1, "eng_Latn", generator=lambda: answer, after_batch=kill)
    assert len(answer.asked) == 8
    stored = (stage_dir(lake, 1).parent.parent / "evaluation" / "stage1" / "eng_Latn" / PREDICTIONS).read_text()
    assert len(stored.splitlines()) == 8  # every finished batch is on disk

    result = evaluate_partition(profile, lake, 1, "eng_Latn", generator=lambda: answer)
    assert len(answer.asked) == len(rows) and len(set(answer.asked)) == len(rows)  # the rest, each once
    assert result.stats.cache_hits == 8
    # accuracy follows the answers: every scripted right answer counts, the chatter falls back to a
    # seeded random letter that is right only by chance
    acc = result.stats.counters["correct"]
    assert len(right) <= acc < len(right) + (len(rows) - len(right))

    def never():
        raise AssertionError("an unchanged checkpoint generated again")
    again = evaluate_partition(profile, lake, 1, "eng_Latn", generator=never)
    assert again.stats.counters["correct"] == acc and again.stats.cache_hits == len(rows)

    _trained(lake, 1, "v2")  # new weights: every question again
    answer2 = Answerer(rows, set())
    evaluate_partition(profile, lake, 1, "eng_Latn", generator=lambda: answer2)
    assert len(answer2.asked) == len(rows)


def test_all_right_scores_one_and_the_report_shows_it_beside_the_paper(lake_with_mmmu):
    profile, lake = lake_with_mmmu
    _trained(lake, 2, "w1")
    rows = load_questions(profile, lake, "eng_Latn")
    mc_ids = {r["id"] for r in rows if r["question_type"] == "multiple-choice"}
    result = evaluate_partition(profile, lake, 2, "eng_Latn", generator=lambda: Answerer(rows, mc_ids))
    n_open = len(rows) - len(mc_ids)
    assert result.stats.counters["correct"] >= len(mc_ids)  # open questions: right only if the chatter matches
    assert result.stats.counters["correct"] <= len(mc_ids) + n_open

    report = build_report(lake, [2], list(profile.languages), profile.name)
    text = (lake.path("evaluation", "report", "report.md")).read_text()
    eng = json.loads(lake.path("evaluation", "stage2", "eng_Latn", "results.json").read_text())["overall"]["acc"]
    assert f"| this run ({profile.name}), stage 2 | {100 * eng:.2f} |" in text
    assert "| paper: M-MiniGPT4 | 37.27 | 33.45 |" in text
    assert lake.path("evaluation", "report", "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert report.stats.counters["stage2_mmmu"] == round(eng, 4)


def test_missing_weights_or_questions_are_clear_errors(lake_with_mmmu):
    profile, lake = lake_with_mmmu
    with pytest.raises(ValueError, match="materialise `stage3` first"):
        evaluate_partition(profile, lake, 3, "eng_Latn", generator=lambda: None)
    _trained(lake, 3, "x")
    with pytest.raises(ValueError, match="translated_mmmu"):
        evaluate_partition(profile, lake, 3, "fra_Latn", generator=lambda: None)
