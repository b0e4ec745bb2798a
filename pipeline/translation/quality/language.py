"""Language identification (lingua) of translated prose."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from pipeline.languages import LANGS, REGISTRY
from pipeline.translation.quality.common import _clip, _prose_segments, _r4


#: FLORES code -> name of the lingua `Language` member.
LINGUA_NAMES: Mapping[str, str] = MappingProxyType({c: lang.lingua for c, lang in REGISTRY.items()})

# Chinese vs Japanese. lingua decides by script: any hiragana / katakana -> Japanese, Han characters
# only -> Chinese (checked: "赤い円" -> JAPANESE; "三角形", "中央", "日本語" -> CHINESE). A Japanese
# SENTENCE practically always has kana (all toy Japanese sentences do), but a short Japanese noun
# phrase or answer ("三角形", "中央") is written in kanji only and cannot be told apart from Chinese
# by any detector. `check_language` therefore counts a jpn_Jpan output that is detected as Chinese
# and consists of at most JA_KANJI_ONLY_MAX Han characters (no other letters) as AMBIGUOUS: left out
# of the share, reported separately. A longer kanji-only output still counts as Chinese: that is a
# real failure (the model writing Chinese when asked for Japanese).
JA_KANJI_ONLY_MAX = 8
_HAN = re.compile(r"[\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

#: Prose longer than this is cut before detection (speed; a few hundred characters are plenty).
DETECT_MAX_CHARS = 1000


@lru_cache(maxsize=8)
def _detector(langs: tuple[str, ...]):
    """One lingua detector per set of languages (building and loading its models is slow-ish)."""
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(Language, LINGUA_NAMES[c]) for c in langs)).build()


def _enough_letters(text: str, n: int) -> bool:
    if n <= 0:
        return True
    count = 0
    for c in text:
        if c.isalpha():
            count += 1
            if count >= n:
                return True
    return False


def _short_kanji_only(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return 0 < len(letters) <= JA_KANJI_ONLY_MAX and all(_HAN.match(c) for c in letters)


@dataclass
class LanguageShare:
    """Language-ID counts for the outputs of one target language."""

    lang: str
    checked: int = 0  # outputs given to the detector (and not ambiguous)
    matched: int = 0  # ... identified as `lang`
    skipped: int = 0  # outputs with fewer than `min_letters` letters of prose (not judged)
    ambiguous: int = 0  # short kanji-only Japanese detected as Chinese (see JA_KANJI_ONLY_MAX)
    confusions: Counter = field(default_factory=Counter)  # detected code (or "none") -> count

    @property
    def share(self) -> float | None:
        """matched / checked; None when nothing could be checked."""
        return self.matched / self.checked if self.checked else None

    def to_metadata(self) -> dict:
        return {
            "share": _r4(self.share),
            "checked": self.checked,
            "matched": self.matched,
            "skipped": self.skipped,
            "ambiguous": self.ambiguous,
            "confusions": dict(self.confusions.most_common(5)),
        }


@dataclass
class LanguageReport:
    """Result of `LanguageIdentifier.check_language`."""

    threshold: float
    per_language: dict[str, LanguageShare] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(s.checked for s in self.per_language.values())

    @property
    def matched(self) -> int:
        return sum(s.matched for s in self.per_language.values())

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.per_language.values())

    @property
    def overall_share(self) -> float | None:
        return self.matched / self.checked if self.checked else None

    @property
    def shares(self) -> dict[str, float | None]:
        return {lang: s.share for lang, s in self.per_language.items()}

    @property
    def failing(self) -> list[str]:
        """Languages whose share is below the threshold (a language with nothing checked passes)."""
        return [lang for lang, s in self.per_language.items() if s.share is not None and s.share < self.threshold]

    @property
    def passed(self) -> bool:
        return not self.failing

    def to_metadata(self) -> dict:
        return {
            "threshold": _r4(self.threshold),
            "overall_share": _r4(self.overall_share),
            "checked": self.checked,
            "matched": self.matched,
            "skipped": self.skipped,
            "failing": self.failing,
            "per_language": {lang: s.to_metadata() for lang, s in self.per_language.items()},
            "examples": list(self.examples),
        }


class LanguageIdentifier:
    """Identify the language of texts among `langs` (FLORES codes) with ONE lingua detector.

    The detector is built once per set of languages and cached for the process (`_detector`); its
    language models load lazily on the first detection (about 2 s for the 11 languages), after
    which the toy corpus (654 sentences x 11 languages) takes well under a second.

    Only the prose of a text is judged (its translatable segments; code, LaTeX, URLs and numbers
    are dropped), cut to DETECT_MAX_CHARS. Prose with fewer than `min_letters` letters gives None.
    Short Latin-script texts (one or two words) are unreliable for any detector: "hello" -> Spanish.
    """

    def __init__(self, langs: Sequence[str] = LANGS, min_letters: int = 2):
        unknown = [c for c in langs if c not in LINGUA_NAMES]
        if unknown:
            raise ValueError(f"no lingua language for {unknown}; known: {sorted(LINGUA_NAMES)}")
        if len(set(langs)) < 2:
            raise ValueError("language identification needs at least two languages")
        self.langs: tuple[str, ...] = tuple(sorted(set(langs)))
        self.min_letters = min_letters
        self._to_flores: dict | None = None

    @property
    def detector(self):
        return _detector(self.langs)

    def _code(self, language) -> str | None:
        if language is None:
            return None
        if self._to_flores is None:
            from lingua import Language

            self._to_flores = {getattr(Language, LINGUA_NAMES[c]): c for c in self.langs}
        return self._to_flores.get(language)

    def _prose(self, text: str | None) -> str:
        return " ".join(_prose_segments(text or ""))[:DETECT_MAX_CHARS]

    def _detect_prose(self, prose: Sequence[str]) -> list[str | None]:
        out: list[str | None] = [None] * len(prose)
        idx = [i for i, p in enumerate(prose) if _enough_letters(p, self.min_letters)]
        if not idx:
            return out
        batch = [prose[i] for i in idx]
        det = self.detector
        if hasattr(det, "detect_languages_in_parallel_of"):
            found = det.detect_languages_in_parallel_of(batch)
        else:  # older lingua
            found = [det.detect_language_of(t) for t in batch]
        for i, lang in zip(idx, found):
            out[i] = self._code(lang)
        return out

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """The FLORES code detected for each text (None: too few letters to judge), batched."""
        return self._detect_prose([self._prose(t) for t in texts])

    def check_language(
        self,
        texts_by_lang: Mapping[str, Sequence[str]],
        threshold: float = 0.9,
        examples_per_lang: int = 2,
    ) -> LanguageReport:
        """Share of each target language's outputs identified as that language.

        `texts_by_lang` maps a FLORES code to the outputs that should be in it. Outputs whose prose
        has fewer than `min_letters` letters are `skipped` (not failures); short kanji-only Japanese
        detected as Chinese is `ambiguous` (see JA_KANJI_ONLY_MAX); both are left out of the share.
        A language fails when its share is below `threshold`. Up to `examples_per_lang`
        misidentified outputs per language are kept as examples.
        """
        unknown = [c for c in texts_by_lang if c not in self.langs]
        if unknown:
            raise ValueError(f"languages {unknown} are not among the identifier's {list(self.langs)}")
        return self.language_report({lang: list(zip(texts, self.detect(texts))) for lang, texts in texts_by_lang.items()},
                                    threshold, examples_per_lang)

    def language_report(self, detected_by_lang: Mapping[str, Sequence[tuple[str, str | None]]],
                        threshold: float = 0.9, examples_per_lang: int = 2) -> LanguageReport:
        """Aggregate (output, detected code) pairs per target language into the report (see `check_language`)."""
        report = LanguageReport(threshold=threshold)
        for lang, judged in detected_by_lang.items():
            stats = LanguageShare(lang)
            report.per_language[lang] = stats
            shown = 0
            for text, got in judged:
                if got is None:
                    stats.skipped += 1
                    continue
                if got == lang:
                    stats.matched += 1
                    stats.checked += 1
                    continue
                if lang == "jpn_Jpan" and got == "zho_Hans" and _short_kanji_only(self._prose(text)):
                    stats.ambiguous += 1
                    continue
                stats.checked += 1
                stats.confusions[got] += 1
                if shown < examples_per_lang:
                    report.examples.append({"lang": lang, "detected": got, "text": _clip(text or "")})
                    shown += 1
        return report
