"""The WIT step's entry functions: what the assets and `python -m pipeline.wit` call.

- `prepare_clip_model`: an NLLB-CLIP folder (the toy one, trained offline, or `export_pretrained`'s) checked
  by loading it as the filter will, fingerprinted, with a manifest (the `nllb_clip_model` asset).
- `fetch_images` (from `pipeline.wit.images`): every unique WIT image URL downloaded once (`wit_images`).
- `filter_wit_partition`: one language of raw WIT through the filters (`wit_filtered`):

      raw rows of the language --(quarantine: no FLORES mapping, empty caption, image not fetched)-->
      TextQuality (drop: mojibake, too short, no letters, wrong script) --> image read + sha256 -->
      score cache lookup --> misses: decoded in a thread pool while the model scores the previous batch
      (quarantine: undecodable) --> MinScore (drop: cosine < threshold) --> kept

  and writes `wit/<lang>/kept.parquet` (id, lang, caption, page_title, image_url, score, image: the JPEG
  bytes, so the shard writer needs nothing else), `dropped.jsonl` (reason, filter step, score),
  `quarantine.jsonl`, `scores.png` (histogram with the threshold line; a report, not in the manifest)
  and `manifest.json`. kept + dropped + quarantined = read, always.

Every path of the step is known here: `model_dir`, `images_dir`, `partition_dir`, `score_cache_path`.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import WitSettings
from pipeline.lake import Lake, atomic_open, build_manifest, write_jsonl_atomic
from pipeline.languages import LANGS, SOURCE_LANG, REGISTRY, flores_from_iso
from pipeline.rows import BUCKET, read_jsonl, read_parquet, write_parquet
from pipeline.stats import StepResult, StepStats
from pipeline.translation.nllb import local_path
from pipeline.wit.cache import ScoreCache, caption_key, image_key
from pipeline.wit.clip import ClipEngine, NllbClip, model_fingerprint
from pipeline.wit.filters import MinScore, TextQuality, reason_kind
from pipeline.wit.images import ImageStore, ImageUnavailable, fetch_images, images_dir
from pipeline.wit.report import score_histogram_png

__all__ = ["model_dir", "partition_dir", "score_cache_path", "prepare_clip_model", "fetch_images",
           "filter_wit_partition", "partition_scores", "KEPT_COLUMNS", "Scorer"]

Log = Callable[[str], None]
Row = dict[str, Any]
KEPT_COLUMNS = ("id", "lang", "caption", "page_title", "image_url", "score", "image")
KEPT_SCHEMA = pa.schema([("id", pa.string()), ("lang", pa.string()), ("caption", pa.string()),
                         ("page_title", pa.string()), ("image_url", pa.string()), ("score", pa.float64()),
                         ("image", pa.binary())])
SAMPLE_DROPPED = 8
Scorer = ClipEngine  # what filter_wit_partition scores with: `.fingerprint()` and `.model()`


def model_dir(lake: Lake):
    """The NLLB-CLIP `local-dir:` folder, written by the nllb_clip_model asset."""
    return lake.model("nllb_clip", "open_clip")


def partition_dir(lake: Lake, lang: str):
    return lake.path("wit", lang)


def score_cache_path(lake: Lake):
    return local_path(lake.path("wit", "score_cache.sqlite"), "the WIT score cache (SQLite, in the lake)")


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def prepare_clip_model(folder, lake: Lake, settings: WitSettings, stats: StepStats | None = None,
                       extra: dict[str, Any] | None = None) -> StepResult:
    """The NLLB-CLIP model step: load the folder once as the filter will (a broken folder fails here, not
    in eleven partitions), fingerprint it and write its manifest. The fingerprint is the data version
    and the score cache's model key."""
    stats = stats or StepStats("nllb_clip_model", unit="models")
    root = local_path(folder, "NLLB-CLIP folder")
    with stats.timed():
        started = time.perf_counter()
        model = NllbClip.load(root, settings.device)
        stats.add(load_seconds=round(time.perf_counter() - started, 3),
                  n_params=sum(p.numel() for p in model.model.parameters()))
        fingerprint = model_fingerprint(root)
        files = {p.name: None for p in sorted(root.iterdir()) if p.is_file() and p.name != "manifest.json"}
        manifest = build_manifest(root, files, extra={"fingerprint": fingerprint, "content_digest": fingerprint,
                                                      "model": settings.model, **(extra or {})})
    stats.items += 1
    return StepResult(str(root), manifest, stats)


# ---------------------------------------------------------------------------
# Partition
# ---------------------------------------------------------------------------


def row_id(row: Row) -> str:
    """Stable id of a WIT row (image, language, caption), as raw WIT's row id."""
    blob = f"{row.get('image_url', '')}\0{row.get('lang', '')}\0{row.get('caption', '')}"
    return "wit/" + hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def _claimed_by(row: Row, languages: Sequence[str]) -> tuple[str, str | None]:
    """(partition, quarantine reason or None). Rows that no language partition of the profile can take
    (no FLORES mapping, a language outside the profile) go to the English partition, quarantined, so the
    partitions together account for every raw row."""
    lang = row.get("lang") or flores_from_iso(str(row.get("language") or ""))
    if not lang or lang not in REGISTRY:
        return SOURCE_LANG, f"unknown language: WIT code {row.get('language')!r} has no FLORES mapping"
    if lang not in languages:
        return SOURCE_LANG, f"language not in profile: {lang}"
    return lang, None


def _partition_rows(lake: Lake, lang: str, languages: Sequence[str]) -> list[tuple[Row, str | None]]:
    """The raw WIT rows this partition owns. Other languages read only their own rows (a filter on the
    `lang` column); English also reads the rows no partition claims."""
    path = lake.raw("wit", "rows.parquet")
    with path.open("rb") as f:
        has_lang = "lang" in pq.read_schema(f).names
    if lang == SOURCE_LANG or not has_lang:
        rows = read_parquet(path)
    else:
        with path.open("rb") as f:
            table = pq.read_table(f, filters=[("lang", "=", lang)])
        rows = table.drop_columns([c for c in table.column_names if c == BUCKET]).to_pylist()
    out = []
    for row in rows:
        part, problem = _claimed_by(row, languages)
        if part == lang:
            out.append((row, problem))
    return out


def _public(row: Row) -> Row:
    """The fields of a WIT row the outputs keep (no image bytes, no raw-only columns)."""
    return {"id": row["id"], "lang": row.get("lang"), "language": row.get("language"),
            "caption": row.get("caption"), "page_title": row.get("page_title"), "page_url": row.get("page_url"),
            "image_url": row.get("image_url")}


def _safe(decode):
    def run(data: bytes):
        try:
            return decode(data), None
        except Exception as exc:  # PIL raises many kinds (OSError, SyntaxError, ValueError...)
            return None, f"image undecodable: {type(exc).__name__}: {exc}"
    return run


def _batches(items: list, size: int) -> Iterator[list]:
    for k in range(0, len(items), size):
        yield items[k:k + size]


def _score_misses(misses: list[tuple[str, str, bytes, str]], lang: str, engine: Scorer, settings: WitSettings,
                  cache: ScoreCache, fingerprint: str, stats: StepStats, log: Log) -> tuple[dict, dict]:
    """Score (image key, caption key, image bytes, caption) pairs of one language. Images of batch i+1
    are decoded in a thread pool while the model scores batch i; each batch is stored in the cache
    before the next one starts. Returns ({(image, caption): score}, {image key: undecodable reason})."""
    model = engine.model()
    decode_one, collate = model.image_pipeline()
    decode = _safe(decode_one)
    scores: dict[tuple[str, str], float] = {}
    broken: dict[str, str] = {}
    batches = list(_batches(misses, settings.batch_size))
    model_s = decode_wait_s = 0.0
    done = 0
    with ThreadPoolExecutor(max_workers=settings.decode_threads, thread_name_prefix="wit-decode") as pool:
        pending = [pool.submit(decode, m[2]) for m in batches[0]] if batches else []
        for i, batch in enumerate(batches):
            started = time.perf_counter()
            decoded = [f.result() for f in pending]
            decode_wait_s += time.perf_counter() - started
            if i + 1 < len(batches):  # the next batch decodes while this one is scored
                pending = [pool.submit(decode, m[2]) for m in batches[i + 1]]
            good = [(m, px) for m, (px, err) in zip(batch, decoded) if px is not None]
            for m, (px, err) in zip(batch, decoded):
                if px is None:
                    broken[m[0]] = err
            if good:
                started = time.perf_counter()
                values = model.scores(collate([px for _, px in good]), [m[3] for m, _ in good], lang)
                model_s += time.perf_counter() - started
                items = [(m[0], m[1], v) for (m, _), v in zip(good, values)]
                cache.put_many(fingerprint, items)
                scores.update({(a, b): v for a, b, v in items})
                done += len(good)
            if (i + 1) % 20 == 0 or i + 1 == len(batches):
                log(f"wit {lang}: scored {done}/{len(misses)} pairs")
    stats.model_calls += done
    stats.add(model_seconds=model_s, decode_wait_seconds=decode_wait_s)
    return scores, broken


def filter_wit_partition(lang: str, lake: Lake, scorer: Scorer, settings: WitSettings, log: Log = print,
                         languages: Sequence[str] = LANGS) -> StepResult:
    """Filter the raw WIT rows of one language (see the module doc); `languages`: the profile's languages
    (+ English), for rows that no partition claims. Returns the partition's StepResult."""
    stats = StepStats("wit_filtered", unit="images")
    languages = tuple(dict.fromkeys((SOURCE_LANG, *languages)))
    if lang not in languages:
        raise ValueError(f"wit: {lang!r} is not a language of this profile: {list(languages)}")
    folder = partition_dir(lake, lang)
    quarantined: list[Row] = []
    dropped: list[Row] = []

    def quarantine(row: Row, reason: str) -> None:
        quarantined.append({"file": "raw/wit/rows.parquet", "row": row["id"], "reason": reason,
                            "raw": json.dumps(_public(row), ensure_ascii=False)[:500]})
        stats.rows_quarantined += 1
        stats.reasons[reason_kind(reason)] += 1

    with stats.timed(), ImageStore(images_dir(lake).path) as store:
        candidates = []
        for row, problem in _partition_rows(lake, lang, languages):
            row = {**row, "id": row_id(row), "caption": str(row.get("caption") or "").strip()}
            stats.rows_in += 1
            reason = problem or ("empty caption: no caption text" if not row["caption"] else None) \
                or store.missing_reason(row["image_url"])
            if reason:
                quarantine(row, reason)
            else:
                candidates.append(row)
        text_ok = TextQuality(settings.min_caption_chars, settings.min_script_share)(candidates, stats, dropped)

        # images: bytes from the shards, keyed by content; scores from the cache, or the model
        fingerprint = scorer.fingerprint()
        with_image = []
        for row in text_ok:
            try:
                data = store.read(row["image_url"])
            except ImageUnavailable as exc:
                quarantine(row, str(exc))
                continue
            with_image.append((row, data, image_key(data), caption_key(row["caption"], lang)))
        stats.items = len(with_image)
        with ScoreCache(score_cache_path(lake)) as cache:
            known = cache.get_many(fingerprint, [(i, c) for _, _, i, c in with_image])
            misses = list({(i, c): (i, c, data, row["caption"]) for row, data, i, c in with_image
                           if (i, c) not in known}.values())
            stats.cache_hits += sum(1 for *_, i, c in with_image if (i, c) in known)
            stats.add(pairs=len(with_image), pairs_unique=len({(i, c) for *_, i, c in with_image}))
            log(f"wit {lang}: {stats.rows_in} rows, {len(text_ok)} pass the text filter, {len(with_image)} with "
                f"images, {len(with_image) - len(misses)} scores cached, {len(misses)} pairs to score")
            broken: dict[str, str] = {}
            if misses:
                fresh, broken = _score_misses(misses, lang, scorer, settings, cache, fingerprint, stats, log)
                known.update(fresh)
        scored = []
        for row, data, i, c in with_image:
            if i in broken:
                quarantine(row, broken[i])
            else:
                scored.append({**row, "score": known[(i, c)], "image": data})
        kept = MinScore(settings.threshold)(scored, stats, dropped)
        stats.rows_kept = len(kept)

        # outputs
        kept_rows = [{k: r.get(k) for k in KEPT_COLUMNS} for r in kept]
        if kept_rows:
            write_parquet(folder / "kept.parquet", kept_rows, row_id=lambda r: r["id"])
        else:  # an empty table still has the columns the shard writer reads
            with atomic_open(folder / "kept.parquet", "wb") as f:
                pq.write_table(KEPT_SCHEMA.empty_table(), f)
        dropped_rows = [{**_public(r), "filter_step": r["filter_step"], "reason": r["reason"],
                         "score": r.get("score")} for r in dropped]
        write_jsonl_atomic(folder / "dropped.jsonl", dropped_rows)
        write_jsonl_atomic(folder / "quarantine.jsonl", quarantined)
        kept_scores = [r["score"] for r in kept]
        low_scores = [r["score"] for r in dropped if r.get("score") is not None]
        png = score_histogram_png(kept_scores, low_scores, settings.threshold,
                                  f"WIT {lang}: NLLB-CLIP scores ({scorer.fingerprint()[:8]})")
        with atomic_open(folder / "scores.png", "wb") as f:
            f.write(png)
    if not stats.accounted:
        raise AssertionError(f"wit {lang}: row accounting is broken: {stats.to_dict()}")
    model_s = stats.counters.get("model_seconds", 0.0)
    stats.counters["pairs_scored_per_s"] = round(stats.model_calls / model_s, 1) if model_s else 0.0
    stats.add(threshold=settings.threshold, score_mean_kept=round(sum(kept_scores) / len(kept_scores), 4) if kept_scores else 0.0)
    stats.sample = sorted(({"caption": r["caption"][:200], "score": None if r.get("score") is None else round(r["score"], 4),
                            "reason": r["reason"][:120]} for r in dropped),
                          key=lambda s: (s["score"] is None, -(s["score"] or 0)))[:SAMPLE_DROPPED]
    manifest = build_manifest(folder, {"kept.parquet": len(kept_rows), "dropped.jsonl": len(dropped_rows),
                                       "quarantine.jsonl": len(quarantined)},
                              extra={**stats.to_dict(), "model_fingerprint": fingerprint, "lang": lang})
    log(f"wit {lang}: {stats.rows_kept} kept, {stats.rows_dropped} dropped, {stats.rows_quarantined} quarantined "
        f"of {stats.rows_in}; {stats.model_calls} pairs scored, {stats.cache_hits} from the cache, "
        f"{stats.seconds:.1f}s")
    return StepResult(str(folder), manifest, stats)


def partition_scores(lake: Lake, lang: str) -> tuple[list[float], list[float]]:
    """(scores of kept pairs, scores of pairs dropped by the score filter) of a written partition."""
    folder = partition_dir(lake, lang)
    with (folder / "kept.parquet").open("rb") as f:
        kept = pq.read_table(f, columns=["score"]).column("score").to_pylist()
    low = [r["score"] for r in read_jsonl(folder / "dropped.jsonl") if r.get("score") is not None]
    return kept, low
