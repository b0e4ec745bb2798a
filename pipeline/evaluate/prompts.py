"""The official MMMU prompt (`construct_prompt` of the official data_utils.py with the llava1.5 config,
whose task instruction is empty).

Multiple choice: the question, one `(A) text` line per option (each line ends with a newline), a blank
line, then the instruction. Open: the question, a newline, the instruction. `<image N>` tags stay in the
text verbatim. The official code reads `options` with `eval`; we use `ast.literal_eval`.
"""
from __future__ import annotations

import ast

MULTI_CHOICE_FORMAT = "{}\n{}\nAnswer with the option's letter from the given choices directly."
OPEN_FORMAT = "{}\nAnswer the question using a single word or phrase."


class OptionsError(ValueError):
    """An `options` value that is not a list of strings."""


def parse_options(options: str | list, sample_id: str | None = None) -> list[str]:
    """`options` as a list of strings: a list as is, or the string repr of one (MMMU stores "['a', 'b']")."""
    where = f" of {sample_id}" if sample_id else ""
    if isinstance(options, str):
        try:
            options = ast.literal_eval(options)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise OptionsError(f"options{where} is not a Python list literal: {options[:80]!r} ({e})") from None
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise OptionsError(f"options{where} must be a list of strings, got {str(options)[:80]!r}")
    return list(options)


def choices_for(options: list[str]) -> tuple[dict[str, str], list[str]]:
    """(index2ans, all_choices) as the official `get_multi_choice_info`: letters A, B, C, ... in order."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    return dict(zip(letters, options)), letters


def build_prompt(question: str, options: str | list, question_type: str | None = None) -> str:
    """The official prompt. Without `question_type`, a question with options is multiple choice."""
    opts = parse_options(options)
    if question_type is None:
        question_type = "multiple-choice" if opts else "open"
    if question_type == "multiple-choice":
        index2ans, _ = choices_for(opts)
        lines = "".join(f"({letter}) {text}\n" for letter, text in index2ans.items())
        return MULTI_CHOICE_FORMAT.format(question, lines)
    return OPEN_FORMAT.format(question)
