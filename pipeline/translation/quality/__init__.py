"""Quality checks for machine-translated text: structure, language, length and repetition.

One module per check (`structure`, `language`, `outliers`); this package exports their public names.

Pure functions and small report dataclasses, meant to run over a whole translated asset and feed
Dagster asset checks (the caller wraps them; this module never imports Dagster). Each check returns
COUNTS and a few EXAMPLES, and every report has ``to_metadata()`` giving a JSON-friendly dict.

* `protected_spans` / `check_structure`: every protected piece of a source (`<image>`, `<image 1>`,
  code, LaTeX, URLs, line markers, standalone numbers: what `segment.segment` keeps verbatim) must
  occur in the translation exactly as often as in the source, and the number of line breaks must
  not change.
* `must_survive_diff` (also in `check_structure` and the translator's guard `is_suspect_sentence`):
  the numbers, currency amounts, percentages and emoji of a source (`segment.must_survive`, also
  those inside sentences) must occur in the translation, as the same strings, as often.
* `LanguageIdentifier`: lingua-based language identification over the prose of each output,
  `check_language` gives the share of outputs identified as their target language.
* `length_ratio` / `is_length_outlier` / `has_repetition` / `find_outliers`: translations much too
  short or too long for their source (NLLB drops sentences, or invents text) and NLLB's
  degenerate loops ("the the the the", "的的的的").

Length, repetition and language checks look only at the PROSE of a text: the segments that
`segment.segment` marks `translate=True`. Code, LaTeX, URLs and numbers are not translated, so they
would only blur a character ratio, look like repetition (``0 0 0 0`` in a matrix) or confuse the
language detector.
"""
from pipeline.translation.quality.language import (LINGUA_NAMES, LanguageIdentifier, LanguageReport,  # noqa: F401
                                                   LanguageShare)
from pipeline.translation.quality.outliers import (CHAR_RATIO, OutlierReport, find_outliers, has_repetition,  # noqa: F401
                                                   is_length_outlier, is_suspect_sentence, length_ratio,
                                                   outlier_report, outlier_verdict, repeated_unit)
from pipeline.translation.quality.structure import (StructureReport, check_structure, must_survive,  # noqa: F401
                                                    must_survive_diff, protected_spans, structure_report,
                                                    structure_verdict)

__all__ = [
    "protected_spans",
    "must_survive",
    "must_survive_diff",
    "check_structure",
    "StructureReport",
    "LINGUA_NAMES",
    "LanguageIdentifier",
    "LanguageReport",
    "LanguageShare",
    "CHAR_RATIO",
    "length_ratio",
    "is_length_outlier",
    "has_repetition",
    "repeated_unit",
    "find_outliers",
    "OutlierReport",
    "is_suspect_sentence",
]
