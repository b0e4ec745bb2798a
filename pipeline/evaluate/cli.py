"""Command line for MMMU scoring, without Dagster, and the toy Table 2 job.

    python -m pipeline.evaluate score RUN_DIR [--out DIR]
        RUN_DIR holds <Subject>/output.json files (lists of {id, question_type, answer, all_choices,
        index2ans, response}): parse then score as the official main_parse_and_eval.py. Writes
        <Subject>/parsed_output.json and <Subject>/result.json (as the official) and results.json, into
        --out or beside the inputs.
    python -m pipeline.evaluate score PREDICTIONS.json --answers answer_dict_val.json [--out DIR]
        {id: prediction} scored as the official main_eval_only.py (multiple-choice predictions are letters
        already). Writes <stem>.parsed.json and <stem>.results.json into --out or beside PREDICTIONS.
    python -m pipeline.evaluate table2 [--seeds 0 1 2] [--rows STEM ...]
        The toy Table 2 (`pipeline.evaluate.table2`, `make table2`), after `make demo`.

Prints the table (per discipline, its subjects, then `Overall correct/total acc`) on stdout and the
warnings on stderr. Input that cannot be scored honestly (malformed JSON, wrong types, unknown ids, ...;
see `pipeline.evaluate.scoring`) prints `error: ...` naming the file or the ids and exits with 2.
Every file is written atomically (a temporary file, then a rename).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.evaluate.scoring import ScoreResult, ScoringError, score_predictions, score_samples
from pipeline.evaluate.subjects import SUBJECTS
from pipeline.lake import write_text_atomic


def _no_duplicate_keys(path: Path):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        dupes = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) < len(keys) else []
        if dupes:
            raise ScoringError(f"{path}: duplicate keys {dupes[:5]} ({len(dupes)} in all)")
        return dict(pairs)
    return hook


def load_json(path: Path):
    """Parsed JSON; a ScoringError naming the file (and line/column) for anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScoringError(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise ScoringError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def _dump(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def score_run_dir(run: Path, out: Path) -> ScoreResult:
    """The official main_parse_and_eval.py layout; also writes its per-subject files."""
    notes = []
    folders = {p.name: p for p in run.iterdir() if p.is_dir()} if run.is_dir() else {}
    strangers = sorted(n for n in folders if n not in SUBJECTS and not n.startswith("."))
    if strangers:
        notes.append(f"folders that are not MMMU subjects, ignored: {', '.join(strangers)}")
    samples = []
    for subject in SUBJECTS:
        if subject not in folders:
            continue
        path = folders[subject] / "output.json"
        if not path.exists():
            notes.append(f"{subject}/ has no output.json, skipped")
            continue
        records = load_json(path)
        if not isinstance(records, list):
            raise ScoringError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        samples += [{**r, "subject": subject} if isinstance(r, dict) else r for r in records]
    if not samples:
        raise ScoringError(f"{run}: no <Subject>/output.json with any record (subjects: {', '.join(SUBJECTS[:3])}, ...)")
    try:
        result = score_samples(samples)
    except ScoringError as e:
        raise ScoringError(f"{run}: {e}") from None
    result.warnings[:0] = notes
    for subject, t in result.subjects.items():
        _dump(out / subject / "parsed_output.json", [j.to_dict() for j in result.items if j.subject == subject])
        _dump(out / subject / "result.json", {"acc": t.acc, "num_example": t.total, "correct": t.correct})
    _dump(out / "results.json", result.to_dict())
    return result


def score_prediction_file(predictions_path: Path, answers_path: Path, out: Path) -> ScoreResult:
    """The official main_eval_only.py layout."""
    predictions, answers = load_json(predictions_path), load_json(answers_path)
    for path, data in ((predictions_path, predictions), (answers_path, answers)):
        if not isinstance(data, dict):
            raise ScoringError(f"{path}: expected a JSON object keyed by id, got {type(data).__name__}")
    result = score_predictions(predictions, answers)
    stem = predictions_path.stem
    _dump(out / f"{stem}.parsed.json", {j.id: j.to_dict() for j in result.items})
    _dump(out / f"{stem}.results.json", result.to_dict())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score model outputs as the official MMMU code does")
    s.add_argument("path", type=Path, help="a folder of <Subject>/output.json, or a {id: prediction} JSON file")
    s.add_argument("--answers", type=Path, help="answer file {id: {question_type, ground_truth}} (file layout)")
    s.add_argument("--out", type=Path, help="where to write the parsed predictions and results")
    t = sub.add_parser("table2", help="the toy Table 2: train and evaluate every row of configs/ablations/")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--rows", nargs="+", help="overlay file stems (default: every table2_row*.yaml)")
    args = parser.parse_args(argv)
    if args.command == "table2":
        from pipeline.config import ConfigError
        from pipeline.evaluate.table2 import markdown, run_table2

        try:
            print(markdown(run_table2(seeds=args.seeds, rows=args.rows)))
        except (ConfigError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    try:
        if args.path.is_dir():
            if args.answers:
                parser.error("--answers goes with a {id: prediction} file, not a folder of output.json")
            result = score_run_dir(args.path, args.out or args.path)
        elif args.path.exists():
            if not args.answers:
                parser.error(f"{args.path} is a file: pass --answers (the answer_dict_val.json layout)")
            result = score_prediction_file(args.path, args.answers, args.out or args.path.parent)
        else:
            raise ScoringError(f"{args.path}: no such file or folder")
    except ScoringError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.table(), flush=True)
    return 0
