"""The translation step's entry functions: what the assets and `python -m pipeline.translation` call.

- `translate_partition`: one dataset, one target language, one chunk of rows -> translated rows on
  disk, manifest, stats, and the (source, translation) pairs the quality checks judge.
- `backtranslate_partition`: a translated MMMU partition back into English, with chrF against the
  original (the paper's Table 1 check).
- `Engines`: the NLLB model on CTranslate2 and the translation memory, opened as the profile's
  `translation` settings say; the translator is opened once per process and model.

Every path of the step is known here and nowhere else: `model_dir` (the converted model) and
`memory_url` (the profile's URL, else an SQLite file in the lake).
"""
from __future__ import annotations

import functools
from collections import Counter
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import sacrebleu
from upath import UPath

from pipeline.config import TranslationSettings
from pipeline.lake import Lake, Manifest, build_manifest
from pipeline.languages import SOURCE_LANG
from pipeline.raw.mmmu import parse_options
from pipeline.rows import read_rows, write_rows
from pipeline.stats import StepResult, StepStats
from pipeline.translation import nllb, quality
from pipeline.translation.datasets import DATASETS, DatasetSpec, Row, partition_folder
from pipeline.translation.memory import TranslationMemory, memory_url_for
from pipeline.translation.segment import join, segment
from pipeline.translation.translator import TranslationStats, Translator

Log = Callable[[str], None]
SAMPLE_PAIRS = 6


def model_dir(lake: Lake) -> UPath:
    """The converted NLLB model (CTranslate2), written by the nllb_model asset."""
    return lake.model("nllb", "ct2")


def memory_url(settings: TranslationSettings, lake: Lake) -> str:
    """The translation memory: the profile's URL, else an SQLite file in the (local) lake."""
    return settings.memory_url or memory_url_for(lake.path("tm", "translation_memory.sqlite").path)


def prepare_model(hf_dir, lake: Lake, settings: TranslationSettings, stats: StepStats | None = None) -> StepResult:
    """The NLLB model step: a Hugging Face NLLB folder (downloaded, or the toy one) converted to CTranslate2
    under `model_dir(lake)`. The model's fingerprint is its data version (and the memory's model key)."""
    stats = stats or StepStats("nllb_model", unit="models")
    with stats.timed():
        ct2 = nllb.convert_to_ctranslate2(hf_dir, model_dir(lake), settings.quantization)
        fingerprint = nllb.model_fingerprint(ct2)
        files = {f.name: None for f in sorted(ct2.iterdir()) if f.is_file() and f.name != "manifest.json"}
        manifest = build_manifest(ct2, files, extra={"fingerprint": fingerprint, "content_digest": fingerprint,
                                                     "quantization": settings.quantization})
    stats.items += 1
    return StepResult(str(ct2), manifest, stats)


class Engines:
    """The translator and the translation memory of one profile and lake.

    The translator (CTranslate2 model + tokenizer, seconds to load) is opened on first use and kept
    for the process; it is opened again only when the model on disk changes."""

    def __init__(self, settings: TranslationSettings, lake: Lake, batch_tokens: int | None = None):
        self.settings, self.lake, self.batch_tokens = settings, lake, batch_tokens
        self._translator: Translator | None = None
        self._stamp: tuple | None = None

    def translator(self) -> Translator:
        folder = model_dir(self.lake)
        try:
            st = os.stat(os.path.join(folder.path, "model.bin"))
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None  # Translator raises the clear error
        if self._translator is None or stamp != self._stamp:
            self._translator = Translator.from_settings(str(folder), self.settings, batch_tokens=self.batch_tokens)
            self._stamp = stamp
        return self._translator

    def memory(self, src_lang: str = SOURCE_LANG) -> TranslationMemory:
        return self.translator().open_memory(memory_url(self.settings, self.lake), src_lang)


def translate_texts(texts: list[str], tgt_lang: str, translator: Translator, memory: TranslationMemory,
                    stats: StepStats, src_lang: str = SOURCE_LANG, log: Log = print) -> list[str]:
    """Translate whole texts (structure kept verbatim), through the memory; only misses reach the model."""
    return translate_texts_flagged(texts, tgt_lang, translator, memory, stats, src_lang, log)[0]


def translate_texts_flagged(texts: list[str], tgt_lang: str, translator: Translator, memory: TranslationMemory,
                            stats: StepStats, src_lang: str = SOURCE_LANG, log: Log = print
                            ) -> tuple[list[str], list[bool]]:
    """`translate_texts`, plus for each text whether one of its sentences still fails the engine's guard
    (a loop, a length outlier, a lost number) after the retry: such output is kept but marked."""
    started = time.perf_counter()
    distinct = list(dict.fromkeys(texts))  # datasets repeat whole texts ("Describe the image."): segment each once
    segmented = [segment(t) for t in distinct]
    counts = Counter(texts)
    sentences = [s.text for segs, t in zip(segmented, distinct) for s in segs if s.translate for _ in range(counts[t])]
    unique = list(dict.fromkeys(sentences))
    known = memory.get_many(unique, tgt_lang)
    missing = [s for s in unique if s not in known]
    log(f"{src_lang}->{tgt_lang}: {len(sentences)} sentences, {len(unique)} unique, {len(known)} in memory, "
        f"{len(missing)} to translate")
    if missing:
        done = [0]

        def store(batch: list[tuple[str, str, str]]) -> None:
            memory.put_many(batch)  # durable before the next batch starts
            done[0] += len(batch)
            log(f"{src_lang}->{tgt_lang}: translated {done[0]}/{len(missing)} sentences")

        engine = TranslationStats()
        translated = translator.translate([(s, tgt_lang) for s in missing], src_lang=src_lang, on_batch=store,
                                          stats=engine)
        known.update(zip(missing, translated))
        stats.add(model_seconds=engine.seconds, tokens_out=engine.tgt_tokens, retried=engine.retried,
                  numbers_fallback=engine.numbers_fallback)
    # judged once per unique sentence, on memory hits too: the mark does not depend on when it was translated
    suspect = {s for s in unique if quality.is_suspect_sentence(s, known[s], tgt_lang)}
    joined = {t: join(segs, [known[s.text] for s in segs if s.translate], tgt_lang) for t, segs in zip(distinct, segmented)}
    flagged = {t: any(s.translate and s.text in suspect for s in segs) for t, segs in zip(distinct, segmented)}
    out, flags = [joined[t] for t in texts], [flagged[t] for t in texts]
    stats.add(texts=len(texts), segments_total=len(sentences), segments_unique=len(unique),
              segments_suspect=len(suspect))
    stats.cache_hits += len(unique) - len(missing)
    stats.model_calls += len(missing)
    stats.items += len(missing)
    stats.seconds += time.perf_counter() - started
    return out, flags


SUSPECT_KEY = "translation_suspect"  # marks a row with a sentence that failed the guard; shards leave it out


def translate_rows(spec: DatasetSpec, rows: list[Row], tgt_lang: str, translator: Translator,
                   memory: TranslationMemory, stats: StepStats, log: Log = print) -> list[Row]:
    per_row = [spec.texts(r) for r in rows]
    flat = [t for texts in per_row for t in texts]
    texts_out, flags = translate_texts_flagged(flat, tgt_lang, translator, memory, stats, log=log)
    translated, flagged = iter(texts_out), iter(flags)
    out = []
    for r, texts in zip(rows, per_row):
        row = spec.rebuild(r, [next(translated) for _ in texts], tgt_lang)
        if any([next(flagged) for _ in texts]):
            row[SUSPECT_KEY] = True
        out.append(row)
    stats.rows_in += len(rows)
    stats.rows_kept += len(rows)
    stats.add(rows_suspect=sum(SUSPECT_KEY in r for r in out))
    return out


def row_language(row_id: str, languages: Sequence[str]) -> str:
    """The one target language a row goes to under `translation.one_language_per_row`: a stable hash of its
    id (salted apart from the chunk hash, so a chunk still spreads over every language)."""
    digest = hashlib.sha256(f"language:{row_id}".encode()).digest()
    return languages[int.from_bytes(digest[:8], "big") % len(languages)]


def _keep_own_rows(rows: list[Row], lang: str, languages: Sequence[str], stats: StepStats) -> list[Row]:
    """This language's share of the rows; the others' are counted as dropped, with the reason."""
    own = [r for r in rows if row_language(str(r["id"]), languages) == lang]
    others = len(rows) - len(own)
    if others:
        stats.rows_in += others
        stats.rows_dropped += others
        stats.reasons["translated into another language (translation.one_language_per_row)"] += others
    return own


def _finish_stats(stats: StepStats) -> None:
    model_s, tokens = stats.counters.get("model_seconds", 0.0), stats.counters.get("tokens_out", 0)
    stats.counters["tokens_per_s"] = round(tokens / model_s, 1) if model_s else 0.0


@dataclass
class CheckOutcome:
    passed: bool
    metadata: dict


@dataclass
class TranslatedPartition:
    result: StepResult
    checks: dict[str, CheckOutcome]  # structure, language, outliers


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Hash of the code that makes a translated partition (this step and the row storage)."""
    here = Path(__file__).resolve().parent
    return _fingerprint_files(sorted(here.rglob("*.py")) + [here.parent / "rows.py", here.parent / "languages.py"])


def _input_key(spec: DatasetSpec, lang: str, chunk: int, n_chunks: int, lake: Lake, engines: Engines,
               slice_of: Sequence[str] = ()) -> str | None:
    """What a partition's output is a function of: the raw sources' content, the chunk, the language, the
    model, the decoding and the step's code (None when a source has no manifest to say its content)."""
    try:
        sources = [Manifest.read(lake.raw(s)).digest() for s in spec.sources]
    except FileNotFoundError:
        return None
    translator = engines.translator()
    blob = json.dumps([sources, spec.name, lang, chunk, n_chunks, translator.fingerprint,
                       translator.settings.as_dict(), engines.settings.langid_threshold, _code_fingerprint()]
                      + ([list(slice_of)] if slice_of else []))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _reuse(folder: UPath, key: str | None, stats: StepStats) -> Manifest | None:
    """The partition already written from the same inputs, intact: its manifest; else None."""
    if key is None:
        return None
    try:
        manifest = Manifest.read(folder)
    except (FileNotFoundError, ValueError, KeyError):
        return None
    x = manifest.extra
    if x.get("input_key") != key or "checks" not in x:
        return None
    if any(not (folder / f.path).exists() or (folder / f.path).stat().st_size != f.bytes for f in manifest.files):
        return None
    stats.rows_in, stats.rows_kept = x.get("rows_in", 0), x.get("rows_kept", 0)
    stats.rows_dropped = x.get("rows_dropped", 0)
    stats.reasons.update(x.get("reasons", {}))
    stats.add(reused=1)
    return manifest


def translate_partition(dataset: str, lang: str, lake: Lake, engines: Engines, chunk: int = 0,
                        n_chunks: int = 1, log: Log = print, languages: Sequence[str] = ()) -> TranslatedPartition:
    """Translate one chunk of a dataset into `lang`, judge it (structure, language, outliers) and write it to
    its partition folder. A partition already written from the same inputs, model, settings and code is
    reused as it is: an unchanged re-run reads two manifests and nothing else. `languages` (the profile's
    target languages) is needed when `translation.one_language_per_row` names the dataset."""
    spec = DATASETS[dataset]
    stats = StepStats(f"translated_{dataset}", unit="segments")
    folder = partition_folder(lake, dataset, lang, chunk, n_chunks)
    sliced = dataset in engines.settings.one_language_per_row
    if sliced and lang not in languages:
        raise ValueError(f"translation.one_language_per_row names {dataset}: the partition's language {lang} "
                         f"must be one of the profile's languages, got {list(languages)}")
    key = _input_key(spec, lang, chunk, n_chunks, lake, engines, tuple(languages) if sliced else ())
    with stats.timed():
        previous = _reuse(folder, key, stats)
    if previous is not None:
        log(f"{dataset} {lang} chunk {chunk}: inputs, model, settings and code unchanged; reusing {folder}")
        checks = {name: CheckOutcome(**c) for name, c in previous.extra["checks"].items()}
        return TranslatedPartition(StepResult(str(folder), previous, stats), checks)
    rows = spec.load(lake, chunk, n_chunks)  # only this chunk's rows are read
    if sliced:
        rows = _keep_own_rows(rows, lang, languages, stats)
    translator = engines.translator()
    with engines.memory() as memory:
        out = translate_rows(spec, rows, lang, translator, memory, stats, log=log)
        pairs = [(s, t) for src, row in zip(rows, out) for s, t in zip(spec.texts(src), spec.texts(row))]
        with stats.timed():
            reports = check_partition(pairs, lang, engines.settings.langid_threshold, memory, stats)
    _finish_stats(stats)
    stats.sample = [{"source": s, "translation": t} for s, t in pairs[:SAMPLE_PAIRS]]
    checks = {name: CheckOutcome(r.passed, r.to_metadata()) for name, r in reports.items()}
    name, n = write_rows(folder, out, spec.fmt)
    manifest = build_manifest(folder, {name: n}, extra={
        **stats.to_dict(), "input_key": key, "checks": {k: vars(c) for k, c in checks.items()}})
    return TranslatedPartition(StepResult(str(folder), manifest, stats), checks)


def _fingerprint_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def checks_fingerprint() -> str:
    """Hash of the code that judges translations (the quality checks, segmentation, the language table):
    a cached verdict is used only while that code is unchanged, so no version needs bumping by hand."""
    here = Path(__file__).resolve().parent
    return _fingerprint_files(sorted((here / "quality").glob("*.py")) + [here / "segment.py", here.parent / "languages.py"])


def _verdict_key(lang: str, source: str, translation: str) -> str:
    blob = "\0".join((checks_fingerprint(), lang, source, translation)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()


def check_partition(pairs: list[tuple[str, str]], lang: str, langid_threshold: float,
                    memory: TranslationMemory | None = None, stats: StepStats | None = None) -> dict:
    """The three quality reports of a translated partition: structure, language, outliers.

    Each unique (source, translation) pair is judged once; with a `memory`, verdicts are stored beside
    the translations and an unchanged re-run judges nothing (a changed translation has another key).
    Language identification runs batched over the unique outputs still to judge."""
    unique = list(dict.fromkeys(pairs))
    keys = {p: _verdict_key(lang, *p) for p in unique}
    stored = memory.get_verdicts(keys.values()) if memory is not None else {}
    verdicts = {p: json.loads(stored[k]) for p, k in keys.items() if k in stored}
    todo = [p for p in unique if p not in verdicts]
    identifier = quality.LanguageIdentifier()
    if todo:
        detected = identifier.detect([t for _, t in todo])
        for (s, t), code in zip(todo, detected):
            verdicts[(s, t)] = {"structure": quality.structure_verdict(s, t),
                                "outliers": quality.outlier_verdict(s, t, lang), "language": code}
        if memory is not None:
            memory.put_verdicts({keys[p]: json.dumps(verdicts[p], ensure_ascii=False) for p in todo})
    if stats is not None:
        stats.add(checks_judged=len(todo), checks_cached=len(unique) - len(todo))
    return {
        "structure": quality.structure_report((s, t, verdicts[(s, t)]["structure"]) for s, t in pairs),
        "language": identifier.language_report({lang: [(t, verdicts[(s, t)]["language"]) for s, t in pairs]},
                                               langid_threshold),
        "outliers": quality.outlier_report((s, t, lang, verdicts[(s, t)]["outliers"]) for s, t in pairs),
    }


def backtranslate_partition(lang: str, lake: Lake, engines: Engines, chunk: int = 0, n_chunks: int = 1,
                            log: Log = print) -> StepResult:
    """MMMU Multi in `lang` translated back into English; chrF against the original questions and options."""
    spec = DATASETS["mmmu"]
    stats = StepStats("mmmu_backtranslated", unit="segments")
    rows = read_rows(partition_folder(lake, "mmmu", lang, chunk, n_chunks))
    texts = [t for r in rows for t in spec.texts(r)]
    originals = [t for r in rows for t in (r["source_question"], *parse_options(r["source_options"]))]
    translator = engines.translator()
    with engines.memory(src_lang=lang) as memory:
        back = translate_texts(texts, SOURCE_LANG, translator, memory, stats, src_lang=lang, log=log)
    stats.rows_in = stats.rows_kept = len(rows)
    _finish_stats(stats)
    stats.counters["chrf_vs_original"] = round(sacrebleu.corpus_chrf(back, [originals]).score, 2)
    stats.sample = [{"original": o, "back": b} for o, b in list(zip(originals, back))[:SAMPLE_PAIRS]]
    out, it = [], iter(back)
    for r in rows:
        vals = [next(it) for _ in spec.texts(r)]
        out.append({**r, "question": vals[0], "options": str(vals[1:]), "lang": SOURCE_LANG, "via_lang": lang})
    folder = partition_folder(lake, "mmmu_back", lang, chunk, n_chunks)
    name, n = write_rows(folder, out, "parquet")
    manifest = build_manifest(folder, {name: n}, extra=stats.to_dict())
    return StepResult(str(folder), manifest, stats)
