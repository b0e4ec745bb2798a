"""How well the WIT filter did on the toy world, from the world's ground truth (toy profile only).

The toy WIT (`pipeline.toy.world._wit`) records, per row, whether its caption describes its image
(`matched`), whether the image can be downloaded (`image_ok`) and whether the caption is clean text
(`text_ok`). `filter_truth(lake, langs)` compares a filtered partition with it: of the rows that reached
the score filter (image and text fine), the share of matched captions kept and of mismatched captions
dropped, per language; rows are recognised by the WIT step's own row id.
"""
from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from pipeline.lake import Lake
from pipeline.languages import flores_from_iso
from pipeline.raw.wit import CAPTION_FIELDS
from pipeline.wit.run import partition_dir, row_id


def truth_rows(lake: Lake) -> pd.DataFrame:
    """The toy WIT rows with their truth: lang, id (as the WIT step computes it), matched, image_ok, text_ok."""
    truth = pd.read_parquet(lake.toy_world("truth", "wit.parquet").path)
    wit = pd.read_csv(lake.toy_world("wit", "wit_v1.train.tsv").path, sep="\t", dtype=str, keep_default_na=False)
    rows = []
    for t in truth.to_dict("records"):
        rec = wit.iloc[int(t["row"])].to_dict()
        caption = next((rec[c].strip() for c in CAPTION_FIELDS if rec.get(c, "").strip()), "")
        lang = flores_from_iso(rec["language"])
        rows.append({"lang": lang, "id": row_id({"image_url": rec["image_url"], "lang": lang, "caption": caption}),
                     "matched": bool(t["matched"]), "image_ok": bool(t.get("image_ok", True)),
                     "text_ok": bool(t.get("text_ok", True))})
    return pd.DataFrame(rows)


def filter_truth(lake: Lake, langs) -> dict[str, dict[str, float]]:
    """Per language (and "all"): matched / mismatched rows that reached the score filter, and the shares
    of matched kept and mismatched dropped."""
    table = truth_rows(lake)
    out: dict[str, dict[str, float]] = {}
    totals = {"matched": 0, "matched_kept": 0, "mismatched": 0, "mismatched_dropped": 0}
    for lang in langs:
        with (partition_dir(lake, lang) / "kept.parquet").open("rb") as f:
            kept = set(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        rows = table[(table.lang == lang) & table.image_ok & table.text_ok]
        matched, mismatched = rows[rows.matched], rows[~rows.matched]
        counts = {"matched": len(matched), "matched_kept": int(matched.id.isin(kept).sum()),
                  "mismatched": len(mismatched), "mismatched_dropped": int((~mismatched.id.isin(kept)).sum())}
        for k, v in counts.items():
            totals[k] += v
        out[lang] = _shares(counts)
    out["all"] = _shares(totals)
    return out


def _shares(c: dict[str, int]) -> dict[str, float]:
    return {**c, "matched_kept_share": round(c["matched_kept"] / c["matched"], 4) if c["matched"] else 1.0,
            "mismatched_dropped_share": round(c["mismatched_dropped"] / c["mismatched"], 4) if c["mismatched"] else 1.0}
