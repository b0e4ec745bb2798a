"""Quality verdicts cached per unique (source, translation) pair: same reports as computing afresh, and an
unchanged re-run judges nothing."""
from __future__ import annotations

from pipeline.stats import StepStats
from pipeline.toy.lexicon import parallel_corpus
from pipeline.translation import quality
from pipeline.translation.memory import TranslationMemory, memory_url_for
from pipeline.translation.run import check_partition


def _pairs() -> list[tuple[str, str]]:
    rows = parallel_corpus()[:30]
    good = [(r["eng_Latn"], r["fra_Latn"]) for r in rows]
    bad = [("<image>\nThe price is $4.50.", "Le prix."),  # lost <image>, newline and the amount
           ("The circle is red.", "le le le le le le le"),  # a loop
           ("What colour is the circle?", "¿De qué color es el círculo?")]  # Spanish posing as French
    return good + bad + good[:10]  # repeats: counted every time, judged once


def _fresh(pairs, lang, threshold):
    return {"structure": quality.check_structure(pairs),
            "language": quality.LanguageIdentifier().check_language({lang: [t for _, t in pairs]}, threshold),
            "outliers": quality.find_outliers((s, t, lang) for s, t in pairs)}


def test_cached_verdicts_give_the_same_reports_and_a_rerun_judges_nothing(tmp_path):
    pairs = _pairs()
    expected = {k: r.to_metadata() for k, r in _fresh(pairs, "fra_Latn", 0.8).items()}
    assert not _fresh(pairs, "fra_Latn", 0.8)["structure"].passed, "the planted failures are seen"
    url = memory_url_for(tmp_path / "tm.sqlite")
    with TranslationMemory(url, "model-a", {"beam_size": 1}) as memory:
        first, second = StepStats("first"), StepStats("second")
        got1 = check_partition(pairs, "fra_Latn", 0.8, memory, first)
        got2 = check_partition(pairs, "fra_Latn", 0.8, memory, second)
    assert {k: r.to_metadata() for k, r in got1.items()} == expected
    assert {k: r.to_metadata() for k, r in got2.items()} == expected
    unique = len(set(pairs))
    assert first.counters == {"checks_judged": unique, "checks_cached": 0}
    assert second.counters == {"checks_judged": 0, "checks_cached": unique}
    # the verdicts do not depend on the model: another model's memory on the same database reuses them
    with TranslationMemory(url, "model-b", {"beam_size": 4}) as other:
        third = StepStats("third")
        check_partition(pairs, "fra_Latn", 0.8, other, third)
    assert third.counters["checks_judged"] == 0


def test_a_changed_translation_is_judged_again(tmp_path):
    pairs = _pairs()
    with TranslationMemory(memory_url_for(tmp_path / "tm.sqlite"), "m", {}) as memory:
        check_partition(pairs, "fra_Latn", 0.8, memory)
        changed = [(pairs[0][0], pairs[0][1] + " " + pairs[0][1] * 3)] + pairs[1:]  # now a length outlier
        stats = StepStats("s")
        reports = check_partition(changed, "fra_Latn", 0.8, memory, stats)
    assert stats.counters["checks_judged"] == 1
    fresh = _fresh(changed, "fra_Latn", 0.8)
    assert reports["outliers"].to_metadata() == fresh["outliers"].to_metadata()
    assert reports["outliers"].length_outliers == fresh["outliers"].length_outliers >= 1
