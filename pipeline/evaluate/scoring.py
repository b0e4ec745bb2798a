"""MMMU scoring, behaving exactly like the official code (eval_utils.py, main_parse_and_eval.py,
main_eval_only.py of MMMU-Benchmark/MMMU), question by question.

Parsing a multiple-choice response (`parse_multi_choice`):
  1. strip `, . ! ? ; : '` from both ends, ONE CHARACTER KIND AFTER THE OTHER in that order (so "A,." keeps
     its comma: the comma pass runs before the dot pass), then pad with a space on each side;
  2. candidates: letters whose "(X)" occurs; else letters whose " X " occurs; else, only when the response
     has more than 5 whitespace words, options whose text occurs (case-insensitive);
  3. several candidates: the one whose last occurrence (rfind) is latest wins, ties to the earlier
     candidate (numpy argmax); none: `rng.choice(all_choices)`.
The official seeds the global `random` once at import (`random.seed(42)` in eval_utils.py) and parses
subject after subject in `CAT_SHORT2LONG` order, file order within a subject; `score_samples` does the
same with one explicit `random.Random(seed)` that it passes along.

Parsing an open response (`parse_open`): lower-cased, split into pieces (the official sentence split
`\\.\\s(?=[A-Z])` runs AFTER lower-casing, so in effect only newlines split); per piece keep the shortest
tail after any indicator (the last piece also after '='); add the numbers found in those tails; normalise
(numbers: drop commas, float, round to 2; strings: lower-case; a 1-character string becomes [" x", "x "]).
An open answer is right when a normalised gold string is a substring of a predicted string, or a gold
number equals a predicted number.

Bad input (raised as `ScoringError`, naming the first ids and the count) rather than a silent zero:
  - a question_type other than multiple-choice, open or short-answer (the official answer file's word for
    open; the official treats everything that is not multiple-choice as open);
  - an answer that is not a string or a list of strings (a number, null, ...); a response or prediction
    that is not a string; a multiple-choice sample without choices; duplicate ids; an id whose subject is
    not one of the 30; predictions for ids the answer file does not have (the official dies on a KeyError).
Counted warnings (in `ScoreResult.warnings`, with the ids):
  - in the `{id: prediction}` layout, answers without a prediction in a subject that has predictions:
    counted as WRONG (the official silently leaves them out of the total, which inflates accuracy);
    subjects with no prediction at all are skipped, as the official does;
  - a multiple-choice gold that is not one of the sample's choices (it can never be right).
Gold lists written as a string ("['1.5', '1.50']", as the MMMU dataset stores them) are read with
`ast.literal_eval` into a list, which is what the official answer file holds (JSON lists).
"""
from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pipeline.evaluate.subjects import DISCIPLINE_OF, DISCIPLINES, SUBJECTS, subject_of_id

MULTIPLE_CHOICE = "multiple-choice"
OPEN_TYPES = ("open", "short-answer")  # "short-answer" is what the official answer_dict_val.json says
QUESTION_TYPES = (MULTIPLE_CHOICE, *OPEN_TYPES)


class ScoringError(ValueError):
    """Input that cannot be scored honestly; the message names the ids."""


def name_ids(ids: list[str], first: int = 5) -> str:
    """'3 ids: a, b, c' or '12 ids: a, b, c, d, e, ... (+7 more)'."""
    shown = ", ".join(ids[:first])
    more = f", ... (+{len(ids) - first} more)" if len(ids) > first else ""
    return f"{len(ids)} id{'s' if len(ids) != 1 else ''}: {shown}{more}"


# ----------------------------------------------------------------------------- multiple choice
_STRIP_ORDER = (",", ".", "!", "?", ";", ":", "'")


def parse_multi_choice(response: str, all_choices: list[str], index2ans: Mapping[str, str],
                       rng: random.Random) -> str:
    """The letter the response picks; a draw from `rng` when it names none (see the module docstring)."""
    for char in _STRIP_ORDER:  # one kind at a time, in this order, as the official loop does
        response = response.strip(char)
    response = f" {response} "
    kind = "bracket"
    candidates = [c for c in all_choices if f"({c})" in response]
    if not candidates:
        kind = "spaced"
        candidates = [c for c in all_choices if f" {c} " in response]
    lowered = response.lower()
    if not candidates and len(response.split()) > 5:
        kind = "text"
        candidates = [k for k, text in index2ans.items() if text.lower() in lowered]
    if not candidates:
        return rng.choice(all_choices)
    if len(candidates) == 1:
        return candidates[0]
    if kind == "bracket":
        last = [response.rfind(f"({c})") for c in candidates]
    elif kind == "spaced":
        last = [response.rfind(f" {c} ") for c in candidates]
    else:
        last = [lowered.rfind(index2ans[c].lower()) for c in candidates]
    return candidates[last.index(max(last))]  # first of the latest, like numpy.argmax


# ----------------------------------------------------------------------------- open
_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = (":", ",", ".", "!", "?", ";", "'")
_PIECES = re.compile(r"\.\s(?=[A-Z])|\n")  # the official split; it runs on lower-cased text
# The official number patterns, with `(?<!\d)` before a leading digit run. A match never ends inside a
# digit run and a run that fails from its first digit fails from any later one, so the lookbehind finds
# the same matches; it only stops the engine retrying every position of a long run (quadratic time).
_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCIENTIFIC = re.compile(r"-?(?<!\d)\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:(?<!\d)\d+\.\d+|\.\d+|(?<!\d)\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(text: str) -> list[str | float]:
    """A number as [float rounded to 2]; a string lower-cased; a 1-character string as [" x", "x "]."""
    text = text.strip()
    if is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def extract_numbers(text: str) -> list[str]:
    """Numbers with thousands commas, then scientific, then plain ones (the official order, repeats kept)."""
    return _NUM_COMMAS.findall(text) + _NUM_SCIENTIFIC.findall(text) + _NUM_SIMPLE.findall(text)


def key_subresponses(response: str) -> list[str]:
    """Per piece, the shortest tail after an indicator; the whole (cleaned) response if none."""
    response = response.strip().strip(".").lower()
    pieces = _PIECES.split(response)
    keys = []
    for i, piece in enumerate(pieces):
        indicators = _INDICATORS + ("=",) if i == len(pieces) - 1 else _INDICATORS
        shortest = None
        for indicator in indicators:
            if indicator in piece:
                tail = piece.rpartition(indicator)[2].strip()
                # an empty tail is falsy, so the next indicator replaces it unconditionally (as official)
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[str | float]:
    """Normalised candidate answers of an open response, without repeats (first-seen order)."""
    keys = key_subresponses(response)
    found = list(keys)
    for key in keys:
        found.extend(extract_numbers(key))
    normalised = [n for item in found for n in normalize_str(item)]
    return list(dict.fromkeys(normalised))  # the official uses set(): same members, stable order here


def parse_response(response: str, question_type: str, all_choices: list[str],
                   index2ans: Mapping[str, str], rng: random.Random) -> str | list[str | float]:
    """A letter for multiple choice (may draw from `rng`), a candidate list for open questions."""
    if question_type == MULTIPLE_CHOICE:
        return parse_multi_choice(response, all_choices, index2ans, rng)
    return parse_open(response)


# ----------------------------------------------------------------------------- judging
def eval_multi_choice(gold: str | list[str], pred: Any) -> bool:
    return any(g == pred for g in gold) if isinstance(gold, list) else gold == pred


def eval_open(gold: str | list[str], preds: list[str | float]) -> bool:
    golds = [n for g in gold for n in normalize_str(g)] if isinstance(gold, list) else normalize_str(gold)
    for pred in preds:
        if isinstance(pred, str):
            if any(isinstance(g, str) and g in pred for g in golds):
                return True
        elif pred in golds:
            return True
    return False


def judge(question_type: str, gold: str | list[str], parsed: Any) -> bool:
    if question_type == MULTIPLE_CHOICE:
        return eval_multi_choice(gold, parsed)
    return parsed is not None and eval_open(gold, parsed)


# ----------------------------------------------------------------------------- input checks
def coerce_answer(answer: Any) -> str | list[str] | None:
    """A gold as the official expects it (str or list of str); a list literal string becomes the list.
    None for a wrong type."""
    if isinstance(answer, list):
        return answer if all(isinstance(a, str) for a in answer) else None
    if not isinstance(answer, str):
        return None
    text = answer.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return answer  # e.g. an interval "[0, 1)": a plain string answer
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return answer


@dataclass
class Sample:
    """One model output in the official output.json layout (subject: the folder, or taken from the id)."""
    id: str
    question_type: str
    answer: str | list[str]
    response: str
    all_choices: list[str] = field(default_factory=list)
    index2ans: dict[str, str] = field(default_factory=dict)
    subject: str | None = None


class _Problems:
    """Collects bad ids per problem, then raises one ScoringError naming them all."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, problem: str, sample_id: Any) -> None:
        self.found.setdefault(problem, []).append(str(sample_id))

    def raise_if_any(self, where: str = "") -> None:
        if self.found:
            lines = [f"{problem} ({name_ids(ids)})" for problem, ids in self.found.items()]
            raise ScoringError(f"{where}cannot score: " + "; ".join(lines))


def _check_gold(problems: _Problems, sid: str, qtype: Any, answer: Any) -> str | list[str] | None:
    if qtype not in QUESTION_TYPES:
        problems.add(f"question_type not one of {list(QUESTION_TYPES)}", sid)
        return None
    gold = coerce_answer(answer)
    if gold is None:
        problems.add("answer is not a string or a list of strings", sid)
    return gold


def check_samples(raw: Iterable[Mapping | Sample], subject: str | None = None, where: str = "") -> list[Sample]:
    """Validate output.json records (dicts) into Samples; raise ScoringError listing every bad id."""
    problems, out, seen = _Problems(), [], set()
    for i, item in enumerate(raw):
        if isinstance(item, Sample):
            item = vars(item)
        if not isinstance(item, Mapping):
            problems.add("record is not an object", f"#{i}")
            continue
        sid = item.get("id")
        if not isinstance(sid, str):
            problems.add("record without a string id", f"#{i}")
            continue
        if sid in seen:
            problems.add("duplicate id", sid)
        seen.add(sid)
        qtype = item.get("question_type")
        gold = _check_gold(problems, sid, qtype, item.get("answer"))
        response = item.get("response")
        if not isinstance(response, str):
            problems.add("response is not a string", sid)
        choices, index2ans = item.get("all_choices") or [], item.get("index2ans") or {}
        if qtype == MULTIPLE_CHOICE:
            if not (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)):
                problems.add("multiple-choice without a list of letters in all_choices", sid)
            if not (isinstance(index2ans, Mapping)
                    and all(isinstance(k, str) and isinstance(v, str) for k, v in index2ans.items())):
                problems.add("index2ans is not an object of strings", sid)
        subj = subject or item.get("subject") or subject_of_id(sid)
        if subj not in DISCIPLINE_OF:
            problems.add("no known MMMU subject", sid)
        out.append(Sample(sid, qtype, gold, response, list(choices), dict(index2ans), subj))
    problems.raise_if_any(where)
    return out


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Tally:
    correct: int = 0
    total: int = 0

    @property
    def acc(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.correct + other.correct, self.total + other.total)

    def to_dict(self) -> dict:
        return {"correct": self.correct, "total": self.total, "acc": self.acc}


@dataclass
class Judged:
    """One question: what was parsed and whether it is right (`parsed` None: no prediction)."""
    id: str
    subject: str
    question_type: str
    answer: str | list[str]
    parsed: Any
    correct: bool
    response: str | None = None

    def to_dict(self) -> dict:
        d = {"id": self.id, "question_type": self.question_type, "answer": self.answer,
             "parsed_pred": self.parsed, "judge": "Correct" if self.correct else "Wrong"}
        return d if self.response is None else {**d, "response": self.response}


@dataclass
class ScoreResult:
    items: list[Judged]
    subjects: dict[str, Tally]      # the official subject order
    disciplines: dict[str, Tally]   # the official discipline order, only those with scored subjects
    overall: Tally
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"overall": self.overall.to_dict(),
                "disciplines": {k: v.to_dict() for k, v in self.disciplines.items()},
                "subjects": {k: v.to_dict() for k, v in self.subjects.items()},
                "warnings": list(self.warnings)}

    def table(self) -> str:
        """Per discipline then its subjects (as the official print_results.py), then the overall line."""
        width = max([len("Overall-" + d) for d in self.disciplines] + [40])
        row = lambda name, t: f"{name:<{width}} {f'{t.correct}/{t.total}':>11} {t.acc:>7.3f}"  # noqa: E731
        lines = [f"{'Subject':<{width}} {'correct/all':>11} {'acc':>7}"]
        for discipline, subjects in DISCIPLINES.items():
            if discipline in self.disciplines:
                lines.append(row(f"Overall-{discipline}", self.disciplines[discipline]))
                lines += [row(f"  {s}", self.subjects[s]) for s in subjects if s in self.subjects]
        lines.append(row("Overall", self.overall))
        return "\n".join(lines)


def tally(items: list[Judged], warnings: list[str] | None = None) -> ScoreResult:
    """Micro accuracy per subject, per discipline and overall (correct / total)."""
    subjects: dict[str, Tally] = {}
    for s in SUBJECTS:
        mine = [j for j in items if j.subject == s]
        if mine:
            subjects[s] = Tally(sum(j.correct for j in mine), len(mine))
    disciplines = {d: sum((subjects[s] for s in subs if s in subjects), Tally())
                   for d, subs in DISCIPLINES.items() if any(s in subjects for s in subs)}
    overall = sum(subjects.values(), Tally())
    ordered = [j for s in subjects for j in items if j.subject == s]
    return ScoreResult(ordered, subjects, disciplines, overall, list(warnings or []))


def score_samples(samples: Iterable[Mapping | Sample], seed: int = 42,
                  rng: random.Random | None = None) -> ScoreResult:
    """Parse and judge output.json records as main_parse_and_eval.py does, for any mix of subjects.

    Subjects are processed in the official order whatever the input order (file order within a
    subject), all from ONE random stream, so the random fallbacks equal the official ones."""
    checked = check_samples(samples)
    rng = rng if rng is not None else random.Random(seed)
    items, off_choices = [], []
    for subject in SUBJECTS:
        for s in (s for s in checked if s.subject == subject):
            parsed = parse_response(s.response, s.question_type, s.all_choices, s.index2ans, rng)
            if s.question_type == MULTIPLE_CHOICE:
                golds = s.answer if isinstance(s.answer, list) else [s.answer]
                if not any(g in s.all_choices for g in golds):
                    off_choices.append(s.id)
            items.append(Judged(s.id, subject, s.question_type, s.answer, parsed,
                                judge(s.question_type, s.answer, parsed), s.response))
    warnings = []
    if off_choices:
        warnings.append(f"multiple-choice golds that are none of the choices, never right ({name_ids(off_choices)})")
    return tally(items, warnings)


def score_predictions(predictions: Mapping[str, Any], answers: Mapping[str, Any]) -> ScoreResult:
    """Judge `{id: prediction}` against `{id: {question_type, ground_truth}}` as main_eval_only.py does:
    multiple-choice predictions are ALREADY letters and are compared as they are (not re-parsed); open
    predictions go through `parse_open`. See the module docstring for missing and unknown ids."""
    problems = _Problems()
    golds: dict[str, tuple[str, Any, str]] = {}
    for sid, entry in answers.items():
        if not isinstance(entry, Mapping):
            problems.add("answer entry is not an object", sid)
            continue
        gold = _check_gold(problems, sid, entry.get("question_type"), entry.get("ground_truth"))
        subject = subject_of_id(sid)
        if subject is None:
            problems.add("answer id names no known MMMU subject", sid)
        golds[sid] = (entry.get("question_type"), gold, subject)
    for sid, pred in predictions.items():
        if sid not in answers:
            problems.add("predictions for ids the answer file does not have", sid)
        elif not isinstance(pred, str):
            problems.add("prediction is not a string", sid)
    problems.raise_if_any()

    predicted_subjects = {golds[sid][2] for sid in predictions}
    items, missing = [], []
    for sid, (qtype, gold, subject) in golds.items():
        if subject not in predicted_subjects:
            continue
        if sid not in predictions:
            missing.append(sid)
            items.append(Judged(sid, subject, qtype, gold, None, False))
            continue
        pred = predictions[sid]
        parsed = pred if qtype == MULTIPLE_CHOICE else parse_open(pred)
        items.append(Judged(sid, subject, qtype, gold, parsed, judge(qtype, gold, parsed)))
    warnings = []
    if missing:
        warnings.append(f"answers without a prediction, counted as wrong ({name_ids(missing)})")
    skipped = sorted({golds[sid][2] for sid in golds} - predicted_subjects, key=SUBJECTS.index)
    if skipped:
        warnings.append(f"subjects with no prediction at all, not scored: {', '.join(skipped)}")
    return tally(items, warnings)
