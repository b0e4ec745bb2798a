"""WIT (Wikipedia-based Image Text) rows: TSV(.gz) or Parquet, one caption per image and page.

WIT names languages with Wikipedia codes ('zh', 'hi', ...); we map them to FLORES codes. Rows in a
language outside the profile are kept out with the reason 'language not in profile', not silently.
"""
from __future__ import annotations

import pandas as pd
from upath import UPath

from pipeline.raw.accounting import ReadResult, SourceError
from pipeline.raw.files import expand
from pipeline.languages import flores_from_iso

REQUIRED = ("language", "page_url", "image_url")
CAPTION_FIELDS = ("caption_reference_description", "caption_attribution_description")


def _load(files: list[UPath]) -> list[tuple[str, pd.DataFrame]]:
    frames = []
    for f in files:
        if f.suffix == ".parquet":
            df = pd.read_parquet(f)
        else:
            with f.open("rb") as fh:
                df = pd.read_csv(fh, sep="\t", dtype=str, keep_default_na=False,
                                 compression="gzip" if f.name.endswith(".gz") else None)
        frames.append((f.name, df))
    return frames


def read_wit(path: str, languages: tuple[str, ...]) -> ReadResult:
    """Keep rows with an image URL and a caption in one of `languages` (+ English)."""
    files = expand(path)
    if not files:
        raise SourceError(f"wit: no files match {path} (check sources.wit.path in the profile)")
    wanted = set(languages) | {"eng_Latn"}
    result = ReadResult("wit")
    for name, df in _load(files):
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise SourceError(f"wit: {name} lacks column(s) {missing}; WIT TSVs have {list(REQUIRED)} and captions")
        for i, rec in enumerate(df.to_dict("records")):
            rec = {k: ("" if v is None else str(v)) for k, v in rec.items()}
            caption = next((rec[c].strip() for c in CAPTION_FIELDS if rec.get(c, "").strip()), "")
            lang = flores_from_iso(rec["language"])
            if not rec["image_url"].startswith(("http://", "https://")):
                result.reject(name, i, "bad image_url: not an http(s) URL", rec)
            elif not caption:
                result.reject(name, i, "missing field: no caption_reference_description or attribution", rec)
            elif lang is None:
                result.reject(name, i, f"unknown language: WIT code {rec['language']!r} has no FLORES mapping", rec)
            elif lang not in wanted:
                result.reject(name, i, f"language not in profile: {lang}", rec)
            else:
                result.keep({**rec, "lang": lang, "caption": caption})
    return result

