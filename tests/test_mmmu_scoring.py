"""MMMU scoring agrees with the official code (MMMU-Benchmark/MMMU eval/eval_utils.py and friends), rule by
rule. The expected values below were also checked against the official functions run locally (not vendored)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.evaluate.prompts import OptionsError, build_prompt, choices_for, parse_options
from pipeline.evaluate.scoring import (ScoringError, coerce_answer, eval_open, extract_numbers, key_subresponses,
                                       parse_multi_choice, parse_open, parse_response, score_predictions,
                                       score_samples)
from pipeline.evaluate.subjects import DISCIPLINE_OF, SUBJECTS, subject_of_id

ROOT = Path(__file__).resolve().parent.parent
ABCD = ["A", "B", "C", "D"]
PETS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


class NoDraw:
    """An rng that must not be used: the response named an answer."""

    def choice(self, seq):
        raise AssertionError("fell back to random although the response names an answer")


class Draw:
    """An rng that records the fallback and returns a sentinel."""

    def __init__(self):
        self.calls = 0

    def choice(self, seq):
        self.calls += 1
        return "RANDOM"


def mc(response, choices=ABCD, index2ans=PETS, rng=None):
    return parse_multi_choice(response, choices, index2ans, rng or NoDraw())


# ----------------------------------------------------------------------------- subjects and prompts
def test_subjects_official_order_and_disciplines():
    assert SUBJECTS[:4] == ("Accounting", "Agriculture", "Architecture_and_Engineering", "Art")
    assert SUBJECTS[-2:] == ("Public_Health", "Sociology") and len(SUBJECTS) == 30
    assert DISCIPLINE_OF["Manage"] == "Business" and DISCIPLINE_OF["Agriculture"] == "Tech and Engineering"
    assert subject_of_id("validation_Art_Theory_3") == "Art_Theory"  # not "Art"
    assert subject_of_id("validation_Art_3") == "Art"
    assert subject_of_id("test_Diagnostics_and_Laboratory_Medicine_12") == "Diagnostics_and_Laboratory_Medicine"
    assert subject_of_id("validation_Cooking_1") is None


def test_prompt_is_the_official_format():
    q = "Which animal is in <image 1>?"
    assert build_prompt(q, "['cat', 'dog']") == (
        "Which animal is in <image 1>?\n(A) cat\n(B) dog\n\n"
        "Answer with the option's letter from the given choices directly.")
    assert build_prompt("How many legs?", "[]") == "How many legs?\nAnswer the question using a single word or phrase."
    assert build_prompt("How many?", "[]", "open") == "How many?\nAnswer the question using a single word or phrase."
    assert choices_for(["x", "y", "z"]) == ({"A": "x", "B": "y", "C": "z"}, ["A", "B", "C"])


def test_options_are_literal_eval_never_eval():
    assert parse_options("['a', \"b's\"]") == ["a", "b's"]
    with pytest.raises(OptionsError, match="validation_Art_7"):
        parse_options("__import__('os').getcwd()", "validation_Art_7")
    with pytest.raises(OptionsError, match="validation_Art_8"):
        parse_options("['a', 'b'", "validation_Art_8")
    with pytest.raises(OptionsError, match="list of strings"):
        parse_options("[1, 2]", "validation_Art_9")


# ----------------------------------------------------------------------------- multiple choice
def test_bracketed_letter():
    assert mc("(B)") == "B"
    assert mc("I think the answer is (C) bird") == "C"


def test_spaced_letter_and_case_sensitivity():
    assert mc("B") == "B"
    assert mc("The answer is D.") == "D"  # the final '.' is stripped, then " D " is found
    rng = Draw()
    assert mc("b", rng=rng) == "RANDOM" and rng.calls == 1  # letters are matched case-sensitively
    assert mc("AB", rng=Draw()) == "RANDOM"  # no " A " nor " B "


def test_strip_runs_one_character_kind_after_the_other():
    # The comma pass runs before the dot pass, so "A,." keeps its comma -> no " A " -> random.
    assert mc("A,.", rng=Draw()) == "RANDOM"
    assert mc("A.,") == "A"  # the comma goes first, then the dot
    assert mc("'A'") == "A"


def test_option_text_only_past_five_words():
    assert mc("I believe it is the dog") == "B"  # 6 words
    assert mc("it is the big dog", rng=Draw()) == "RANDOM"  # 5 words: text is not looked at
    assert mc("surely I believe it is the DOG") == "B"  # case-insensitive


def test_several_candidates_the_last_occurrence_wins():
    assert mc("(C) is tempting but (A) it is") == "A"
    assert mc("(A) is wrong, (C) is right") == "C"
    assert mc("A or B") == "B"
    assert mc("A or (B)") == "B"  # brackets first: only B is a candidate
    assert mc("it is not a cat, I am sure it is a fish") == "D"
    assert mc("it is not a fish, I am sure it is a cat") == "A"
    # two option texts whose last occurrences start at the same place: the first candidate wins (argmax)
    assert mc("I would say that dog food is best", ["A", "B"], {"A": "dog", "B": "dog food"}) == "A"
    assert mc("I would say that dog food is best", ["A", "B"], {"A": "dog food", "B": "dog"}) == "A"


def test_fallback_is_the_seeded_stream():
    rng = random.Random(42)
    got = [mc("no idea at all", rng=rng) for _ in range(6)]
    assert got == ["A", "A", "C", "B", "B", "B"]  # random.Random(42).choice(ABCD) six times


def _unparseable(subject, n, choices=ABCD):
    return [{"id": f"validation_{subject}_{i}", "question_type": "multiple-choice", "answer": "C",
             "all_choices": choices, "index2ans": {c: f"option {c}" for c in choices}, "response": "no idea"}
            for i in range(1, n + 1)]


def test_fallback_order_follows_official_subject_order_not_input_order():
    art, acc = _unparseable("Art", 2), _unparseable("Accounting", 2)
    stream = random.Random(42)
    expected = [stream.choice(ABCD) for _ in range(4)]  # Accounting before Art, file order within
    assert expected == ["A", "A", "C", "B"]
    result = score_samples(art + acc)  # Art first in the input
    assert [j.id for j in result.items] == ["validation_Accounting_1", "validation_Accounting_2",
                                            "validation_Art_1", "validation_Art_2"]
    assert [j.parsed for j in result.items] == expected
    assert result.subjects["Accounting"].correct == 0 and result.subjects["Art"].correct == 1
    again = score_samples(acc + art)
    assert [(j.id, j.parsed) for j in again.items] == [(j.id, j.parsed) for j in result.items]
    assert again.to_dict() == result.to_dict()


# ----------------------------------------------------------------------------- open
def test_open_numbers_with_commas():
    assert sorted(parse_open("The answer is 3,000")) == [0.0, 3000.0]  # "000" is also a plain number
    assert eval_open("3000", parse_open("The answer is 3,000"))
    assert eval_open("1,000", parse_open("1000"))
    assert not eval_open("3001", parse_open("The answer is 3,000"))


def test_open_indicators_keep_the_shortest_tail():
    assert parse_open("so the result is 12.5") == [12.5]
    assert eval_open("12.5", parse_open("So the result is 12.5."))
    assert parse_open("x = 5") == [5.0]  # '=' counts in the last piece
    assert parse_open("The answer is 4\nbut maybe 5") == [4.0]  # the second piece has no indicator
    # The official sentence split looks for ". [A-Z]" after lower-casing: it never fires; one piece.
    assert parse_open("The answer is 4. So it is 5") == [5.0]
    # An empty tail is falsy, so the next indicator replaces it whatever its length (official quirk).
    assert key_subresponses("answer is \nresult: 7") == ["is"]
    assert parse_open("Paris") == ["paris"]


def test_open_numbers_are_rounded_to_two_places():
    assert eval_open("0.333", parse_open("1/3 is about 0.3333"))
    assert not eval_open("0.34", parse_open("0.3333"))


def test_one_character_gold_needs_a_space():
    assert not eval_open("a", parse_open("banana"))
    assert eval_open("a", parse_open("The answer is a"))
    assert eval_open("C", parse_open("the answer is C"))


def test_list_golds():
    assert coerce_answer("['1.5', '1.50']") == ["1.5", "1.50"]
    assert coerce_answer(["$MgS$", "MgS"]) == ["$MgS$", "MgS"]
    assert coerce_answer("[0, 1)") == "[0, 1)"  # not a list literal: a plain answer
    assert coerce_answer(3000) is None and coerce_answer(None) is None
    result = score_samples([{"id": "validation_Chemistry_30", "question_type": "short-answer",
                             "answer": "['$MgS$', 'MgS']", "response": "It is MgS"}])
    assert result.overall.correct == 1


def test_parse_response_dispatches_on_question_type():
    assert parse_response("(B)", "multiple-choice", ABCD, PETS, NoDraw()) == "B"
    assert parse_response("42", "open", [], {}, NoDraw()) == [42.0]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [
    "1" * 200_000 + ",", "1," * 100_000, "1." * 100_000 + "x", "1" * 100_000 + "e", "-1.1" * 50_000,
    "is " * 60_000, "(A" * 60_000, " A" * 60_000 + "!", "1,000" * 40_000, ("1e" + "1" * 50) * 2_000,
    "\n= " * 60_000, ". A" * 60_000,
], ids=lambda text: f"{text[:8]!r}x{len(text)}")
def test_adversarial_long_responses_parse_quickly(text):
    parse_open(text)
    extract_numbers(text)
    parse_multi_choice(text, ABCD, PETS, random.Random(0))


# ----------------------------------------------------------------------------- tallies and bad input
def test_micro_accuracy_per_subject_discipline_and_overall():
    samples = [
        {"id": "validation_Art_1", "question_type": "multiple-choice", "answer": "A", "all_choices": ABCD,
         "index2ans": PETS, "response": "(A)"},
        {"id": "validation_Art_Theory_1", "question_type": "multiple-choice", "answer": "B",
         "all_choices": ABCD, "index2ans": PETS, "response": "(C)"},
        {"id": "validation_Art_Theory_2", "question_type": "open", "answer": "7", "response": "7"},
        {"id": "validation_Finance_1", "question_type": "open", "answer": "2000000", "response": "2,000,000"},
    ]
    r = score_samples(samples)
    assert {k: (t.correct, t.total) for k, t in r.subjects.items()} == {
        "Art": (1, 1), "Art_Theory": (1, 2), "Finance": (1, 1)}
    assert {k: (t.correct, t.total) for k, t in r.disciplines.items()} == {
        "Art and Design": (2, 3), "Business": (1, 1)}
    assert (r.overall.correct, r.overall.total, r.overall.acc) == (3, 4, 0.75)
    assert r.table().splitlines()[-1].split() == ["Overall", "3/4", "0.750"]


def test_bad_samples_raise_naming_the_ids():
    good = {"id": "validation_Art_1", "question_type": "open", "answer": "7", "response": "7"}
    with pytest.raises(ScoringError, match=r"not a string or a list of strings \(1 id: validation_Art_2\)"):
        score_samples([good, {**good, "id": "validation_Art_2", "answer": 7}])
    with pytest.raises(ScoringError, match="question_type not one of .*validation_Art_3"):
        score_samples([{**good, "id": "validation_Art_3", "question_type": "essay"}])
    with pytest.raises(ScoringError, match="duplicate id"):
        score_samples([good, good])
    with pytest.raises(ScoringError, match="response is not a string"):
        score_samples([{**good, "response": None}])
    with pytest.raises(ScoringError, match="no known MMMU subject"):
        score_samples([{**good, "id": "validation_Cooking_1"}])
    with pytest.raises(ScoringError, match="all_choices"):
        score_samples([{**good, "question_type": "multiple-choice", "answer": "A"}])
    many = [{**good, "id": f"validation_Art_{i}", "answer": 1.5} for i in range(10)]
    with pytest.raises(ScoringError, match=r"10 ids: validation_Art_0, .*\(\+5 more\)"):
        score_samples(many)


def test_eval_only_layout_compares_mc_predictions_as_they_are():
    answers = {"validation_Art_1": {"question_type": "multiple-choice", "ground_truth": "B"},
               "validation_Art_2": {"question_type": "multiple-choice", "ground_truth": "B"},
               "validation_Art_3": {"question_type": "short-answer", "ground_truth": "3000"},
               "validation_Art_4": {"question_type": "short-answer", "ground_truth": ["Tampa", "Florida"]},
               "validation_Music_1": {"question_type": "multiple-choice", "ground_truth": "A"}}
    preds = {"validation_Art_1": "B", "validation_Art_2": "(B)",  # not re-parsed: "(B)" != "B"
             "validation_Art_3": "The answer is 3,000"}
    r = score_predictions(preds, answers)
    judged = {j.id: j.correct for j in r.items}
    assert judged == {"validation_Art_1": True, "validation_Art_2": False, "validation_Art_3": True,
                      "validation_Art_4": False}  # Art_4 has no prediction: counted as wrong
    assert (r.overall.correct, r.overall.total) == (2, 4)
    assert any("validation_Art_4" in w and "counted as wrong" in w for w in r.warnings)
    assert any("Music" in w and "not scored" in w for w in r.warnings)  # no prediction in Music at all
    with pytest.raises(ScoringError, match="does not have .*validation_Art_99"):
        score_predictions({**preds, "validation_Art_99": "A"}, answers)
    with pytest.raises(ScoringError, match="prediction is not a string .*validation_Art_1"):
        score_predictions({**preds, "validation_Art_1": 2}, answers)


# ----------------------------------------------------------------------------- a golden run
# Three subjects, every rule once; the numbers follow from the rules (and agree with the official code):
#   Accounting_1 "(B) is right"              -> B, gold B: right
#   Accounting_2 "I cannot tell."             -> no candidate: first draw of Random(42) over ABCD = A, gold A: right
#   Accounting_3 "The answer is 3,000"        -> open, 3000.0 in candidates, gold "3,000": right
#   Art_1        "I think it is the dog"      -> 6 words, text "dog" -> B, gold C: wrong
#   Art_2        "it is the dog"              -> 4 words, no text match: second draw = A, gold A: right
#   Literature_1 "so the result is 12.5"      -> [12.5], gold "12.50": right
#   Literature_2 "banana"                     -> gold "a" is [" a", "a "]: wrong
#   Literature_3 "(A) no, (D) yes"            -> last bracket D, gold ['C', 'D']: right
# Accounting 3/3, Art 1/2, Literature 2/3; Business 3/3, Art and Design 1/2, Humanities 2/3; overall 6/8.
def _golden_run(root: Path) -> None:
    mcq = lambda sid, ans, resp: {"id": sid, "question_type": "multiple-choice", "answer": ans,  # noqa: E731
                                  "all_choices": ABCD, "index2ans": PETS, "response": resp}
    opn = lambda sid, ans, resp: {"id": sid, "question_type": "open", "answer": ans, "response": resp}  # noqa: E731
    runs = {
        "Literature": [opn("validation_Literature_1", "12.50", "so the result is 12.5"),
                       opn("validation_Literature_2", "a", "banana"),
                       mcq("validation_Literature_3", ["C", "D"], "(A) no, (D) yes")],
        "Art": [mcq("validation_Art_1", "C", "I think it is the dog"),
                mcq("validation_Art_2", "A", "it is the dog")],
        "Accounting": [mcq("validation_Accounting_1", "B", "(B) is right"),
                       mcq("validation_Accounting_2", "A", "I cannot tell."),
                       opn("validation_Accounting_3", "3,000", "The answer is 3,000")],
    }
    for subject, records in runs.items():
        (root / subject).mkdir(parents=True)
        (root / subject / "output.json").write_text(json.dumps(records))


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.evaluate", "score", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_cli_on_a_folder_of_subject_outputs(tmp_path):
    run = tmp_path / "run"
    _golden_run(run)
    out = tmp_path / "out"
    proc = run_cli(run, "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].split() == ["Overall", "6/8", "0.750"]
    rows = {line.split()[0]: line.split()[-2] for line in lines[1:]}
    assert rows["Accounting"] == "3/3" and rows["Art"] == "1/2" and rows["Literature"] == "2/3"
    assert rows["Overall-Business"] == "3/3"
    results = json.loads((out / "results.json").read_text())
    assert results["overall"] == {"correct": 6, "total": 8, "acc": 0.75}
    assert results["disciplines"]["Humanities and Social Science"]["correct"] == 2
    parsed = {r["id"]: r for r in json.loads((out / "Art" / "parsed_output.json").read_text())}
    assert parsed["validation_Art_1"]["parsed_pred"] == "B" and parsed["validation_Art_1"]["judge"] == "Wrong"
    assert parsed["validation_Art_2"]["parsed_pred"] == "A"  # the second draw of the one stream
    assert json.loads((out / "Accounting" / "result.json").read_text()) == {"acc": 1.0, "num_example": 3,
                                                                            "correct": 3}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # without --out the files land beside the inputs
    assert run_cli(run).returncode == 0 and (run / "Art" / "result.json").exists()


def test_cli_on_a_prediction_file_with_answers(tmp_path):
    answers = {"validation_Art_Theory_1": {"question_type": "multiple-choice", "ground_truth": "A"},
               "validation_Art_Theory_2": {"question_type": "short-answer", "ground_truth": "1.06"},
               "validation_Art_1": {"question_type": "multiple-choice", "ground_truth": "C"}}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    (tmp_path / "preds.json").write_text(json.dumps({"validation_Art_Theory_1": "A",
                                                     "validation_Art_Theory_2": "It is 1.06 m",
                                                     "validation_Art_1": "B"}))
    proc = run_cli(tmp_path / "preds.json", "--answers", tmp_path / "answers.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].split() == ["Overall", "2/3", "0.667"]
    results = json.loads((tmp_path / "preds.results.json").read_text())
    assert results["subjects"]["Art_Theory"] == {"correct": 2, "total": 2, "acc": 1.0}
    parsed = json.loads((tmp_path / "preds.parsed.json").read_text())
    assert parsed["validation_Art_Theory_2"]["parsed_pred"] == ["1.06 m", 1.06]  # the tail, then its number
    assert parsed["validation_Art_1"] == {"id": "validation_Art_1", "question_type": "multiple-choice",
                                          "answer": "C", "parsed_pred": "B", "judge": "Wrong"}


def test_cli_bad_inputs_exit_2_with_a_clear_message(tmp_path):
    answers = {"validation_Art_1": {"question_type": "multiple-choice", "ground_truth": "C"}}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    (tmp_path / "bad.json").write_text('{"validation_Art_1": "A",\n  "validation_Art_2": }')
    proc = run_cli(tmp_path / "bad.json", "--answers", tmp_path / "answers.json")
    assert proc.returncode == 2 and "bad.json: malformed JSON at line 2 column" in proc.stderr
    (tmp_path / "unknown.json").write_text(json.dumps({"validation_Art_1": "A", "validation_Art_9": "B"}))
    proc = run_cli(tmp_path / "unknown.json", "--answers", tmp_path / "answers.json")
    assert proc.returncode == 2 and "validation_Art_9" in proc.stderr and "does not have" in proc.stderr
    (tmp_path / "wrongtype.json").write_text(json.dumps({"validation_Art_1": {"question_type": "essay",
                                                                              "ground_truth": 3}}))
    proc = run_cli(tmp_path / "unknown.json", "--answers", tmp_path / "wrongtype.json")
    assert proc.returncode == 2 and "question_type not one of" in proc.stderr
    (tmp_path / "dupe.json").write_text('{"validation_Art_1": "A", "validation_Art_1": "C"}')
    proc = run_cli(tmp_path / "dupe.json", "--answers", tmp_path / "answers.json")
    assert proc.returncode == 2 and "duplicate keys ['validation_Art_1']" in proc.stderr
    assert run_cli(tmp_path / "dupe.json").returncode == 2  # a file without --answers
    assert run_cli(tmp_path / "nowhere").returncode == 2
    run = tmp_path / "run" / "Art"
    run.mkdir(parents=True)
    (run / "output.json").write_text(json.dumps([{"id": "validation_Art_1", "question_type": "open",
                                                  "answer": 12, "response": "12"}]))
    proc = run_cli(tmp_path / "run")
    assert proc.returncode == 2 and "validation_Art_1" in proc.stderr and "not a string" in proc.stderr
    assert not (run / "result.json").exists()
    empty = tmp_path / "empty"
    (empty / "Cooking").mkdir(parents=True)
    proc = run_cli(empty)
    assert proc.returncode == 2 and "no <Subject>/output.json" in proc.stderr
