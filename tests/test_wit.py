"""WIT filtered by NLLB-CLIP: the tiny toy NLLB-CLIP, the filters, accounting, the score cache, the assets.

One small toy lake per module: the raw WIT, a small toy NLLB and a tiny NLLB-CLIP (trained through the
nllb_model and nllb_clip_model assets, so the model assets are exercised too), and the WIT images
downloaded from the loopback server (some URLs deliberately broken).
"""
from __future__ import annotations

import io
import json

import dagster as dg
import pyarrow.parquet as pq
import pytest
from PIL import Image

from definitions import make_definitions
from pipeline.config import ToyNllbClipSettings, ToyNllbSettings
from pipeline.lake import Lake
from pipeline.languages import LANGS
from pipeline.rows import read_jsonl, read_parquet, write_parquet
from pipeline.stats import StepStats
from pipeline.toy import lexicon
from pipeline.toy.nllb_clip import TOY_INFO_FILE, roc_auc, split_combinations
from pipeline.toy.wit_truth import filter_truth
from pipeline.wit.cache import ScoreCache, caption_key
from pipeline.wit.clip import ClipEngine, NllbClip
from pipeline.wit.filters import MinScore, TextQuality, reason_kind, script_share
from pipeline.wit.run import (KEPT_COLUMNS, filter_wit_partition, model_dir, partition_dir, partition_scores,
                              score_cache_path)
from tests.conftest import small_profile

# a small toy NLLB whose encoder already carries some meaning at the language token (a 30-step one does
# not: the CLIP then sits on a plateau for hundreds of steps), and a tiny NLLB-CLIP that learns in ~30 s
SMALL_NLLB = ToyNllbSettings(d_model=64, ffn_dim=128, encoder_layers=2, decoder_layers=1, steps=300,
                             warmup_steps=20, batch_size=32, log_every=1000)
TINY_CLIP = ToyNllbClipSettings(image_size=64, vision_layers=1, embed_dim=64, steps=600, batch_size=32,
                                lr=3e-3, warmup_steps=20, draws_per_scene=2, eval_draws=1, log_every=100)
UPSTREAM = ["toy_world", "wit", "nllb_model", "nllb_clip_model", "wit_images"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
quiet = lambda _: None  # noqa: E731


def _profile(root, **wit):
    p = small_profile(str(root))
    return p.model_copy(update={
        "translation": p.translation.model_copy(update={"toy_nllb": SMALL_NLLB}),
        # the tiny model is held to a lower bar than the profile's (0.95): it must still pass its check
        "wit": p.wit.model_copy(update={"toy_nllb_clip": TINY_CLIP, "batch_size": 16, "toy_quality_bar": 0.6,
                                        **wit}),
    })


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("witlake")
    profile = _profile(root)
    defs = make_definitions(profile, lake_root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(run_config=QUIET, instance=instance,
                                    asset_selection=[dg.AssetKey(k) for k in UPSTREAM])
    assert result.success
    lake = Lake.at(root)
    return profile, defs, instance, lake, result


def _meta(result, name):
    return next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == name)


def _engine(lake) -> ClipEngine:
    return ClipEngine(model_dir(lake))


def _fresh_partition(lake, lang, settings, **kw):
    """Filter a partition with a fresh engine (so each call is what a new process would do)."""
    return filter_wit_partition(lang, lake, _engine(lake), settings, log=quiet, **kw)


# --- the tiny NLLB-CLIP -------------------------------------------------------------------------------

def test_tiny_nllb_clip_learns_in_every_language(env):
    """Held-out attribute combinations (never seen in training), fresh renderings: matched captions score
    above mismatched ones in every language, and the model asset reports it."""
    _, _, _, lake, result = env
    info = json.loads((model_dir(lake) / TOY_INFO_FILE).read_text())
    quality = info["quality"]
    assert set(quality) == set(LANGS)
    assert min(q["auc"] for q in quality.values()) >= 0.8, quality
    assert sum(q["auc"] for q in quality.values()) / len(quality) >= 0.9
    assert info["stats"]["final_loss"] < info["stats"]["first_loss"]
    md = _meta(result, "nllb_clip_model")
    assert md["min_auc"].value == min(q["auc"] for q in quality.values())
    assert "fingerprint" in md and "heldout_quality" in md
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "heldout_quality")
    assert check.passed and check.metadata["bar"].value == 0.6


def test_heldout_combinations_are_never_trained_on():
    train, held = split_combinations(0.125, 0)
    assert len(held) == 30 and len(train) == 210
    assert not {tuple(s.slots().values()) for s in train} & {tuple(s.slots().values()) for s in held}
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0 and roc_auc([0.1], [0.1]) == 0.5


def test_captions_are_tokenised_in_their_own_language(env):
    """The same caption under two src_lang values: another language tag first, another embedding."""
    _, _, _, lake, _ = env
    model = NllbClip.load(model_dir(lake).path)
    caption = ["Un cercle rouge."]
    fr, es = model.tokenize(caption, "fra_Latn"), model.tokenize(caption, "spa_Latn")
    tok = model.hf_tokenizer
    assert tok.convert_ids_to_tokens(int(fr[0, 0])) == "fra_Latn"
    assert tok.convert_ids_to_tokens(int(es[0, 0])) == "spa_Latn"
    assert (fr[0, 1:] == es[0, 1:]).all()
    a, b = model.encode_texts(caption, "fra_Latn"), model.encode_texts(caption, "spa_Latn")
    assert float((a - b).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="unknown language code 'xx_Latn'"):
        model.tokenize(caption, "xx_Latn")


def test_batched_decoding_gives_the_models_own_pixels_and_names_broken_images(env):
    """The worker threads' PIL-only decoding + one vectorised collate = open_clip's preprocess, pixel for pixel."""
    import torch

    from pipeline.toy.scenes import jpeg_bytes, make_scenes
    from pipeline.wit.run import _safe

    _, _, _, lake, _ = env
    model = NllbClip.load(model_dir(lake).path)
    decode, collate = model.image_pipeline()
    jpegs = [jpeg_bytes(s, 3) for s in make_scenes(5, 4)]
    reference = torch.stack([model.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs])
    assert torch.equal(collate([decode(b) for b in jpegs]), reference)
    pixels, reason = _safe(decode)(jpegs[0][:200])
    assert pixels is None and reason.startswith("image undecodable: ")


def test_the_paper_path_exports_an_open_clip_model_into_a_local_dir_folder(env, tmp_path):
    """export_pretrained (paper profile) without the network: an open_clip registry model whose text tower
    is the toy NLLB; the folder reloads offline, tokenises with language tags, and is not exported twice."""
    import open_clip

    from pipeline.wit.clip import CONFIG_FILE, export_pretrained, model_fingerprint

    _, _, _, lake, _ = env
    nllb_hf = str(lake.model("nllb", "hf").path)
    config = tmp_path / "nllb-clip-exporttest.json"
    config.write_text(json.dumps({"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                                  "head_width": 16, "patch_size": 16},
                                  "text_cfg": {"hf_model_name": nllb_hf, "hf_tokenizer_name": nllb_hf,
                                               "hf_pooler_type": "cls_pooler", "hf_proj_type": "linear",
                                               "context_length": 16}}))
    open_clip.add_model_config(config)
    folder = export_pretrained("nllb-clip-exporttest", None, tmp_path / "open_clip")
    saved = json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]["text_cfg"]
    assert saved["hf_model_name"] == saved["hf_tokenizer_name"] == str(folder.resolve())
    model = NllbClip.load(folder)
    assert model.hf_tokenizer.convert_ids_to_tokens(int(model.tokenize(["x"], "hin_Deva")[0, 0])) == "hin_Deva"
    fingerprint, stamp = model_fingerprint(folder), (folder / "open_clip_model.safetensors").stat().st_mtime_ns
    assert export_pretrained("nllb-clip-exporttest", None, folder) == folder  # exported before: kept
    assert (folder / "open_clip_model.safetensors").stat().st_mtime_ns == stamp
    assert model_fingerprint(folder) == fingerprint


# --- filters ------------------------------------------------------------------------------------------

def test_text_quality_filter_reasons():
    f = TextQuality(min_chars=12, min_script_share=0.5)
    good = "A small red circle at the top left."
    cases = {
        "mojibake": {"caption": "Le cercle est Ã©tÃ© trÃ¨s rouge.", "lang": "fra_Latn"},
        "control characters": {"caption": "A red circle\x07 at the top left.", "lang": "eng_Latn"},
        "too short": {"caption": "Circle.", "lang": "eng_Latn"},
        "no letters": {"caption": "1234567890 ... !!!", "lang": "eng_Latn"},
        "wrong script": {"caption": good, "lang": "rus_Cyrl"},
        "unknown language": {"caption": good, "lang": "xx"},
    }
    for kind, row in cases.items():
        ok, reason = f.filter(row)
        assert not ok and reason_kind(reason) == kind, (kind, reason)
    assert reason_kind(f.filter({"caption": "A red \ufffd circle at the top left.", "lang": "eng_Latn"})[1]) == "mojibake"
    # every toy caption passes in every language, however short its script writes it ("左上角的红色小圆形。")
    scene = {"size": "small", "colour": "red", "shape": "circle", "position": "top left"}
    for lang in LANGS:
        assert f.filter({"caption": lexicon.sentence("caption", lang, **scene), "lang": lang}) is True, lang
    # short by English standards, long enough for Chinese (char_ratio 0.32): lengths are normalised
    assert f.filter({"caption": "红色的圆形。", "lang": "zho_Hans"}) is True
    assert script_share("Красный круг", "Cyrl") == 1.0 and script_share("abc", "Cyrl") == 0.0


def test_filter_step_counts_and_excludes_with_reasons():
    rows = [{"caption": "ok", "score": s} for s in (0.5, 0.0, -0.0001, -0.3)]
    stats, excluded = StepStats("t"), []
    kept = MinScore(0.0)(rows, stats, excluded)
    assert [r["score"] for r in kept] == [0.5, 0.0]  # a row at exactly the threshold is kept
    assert [r["score"] for r in excluded] == [-0.0001, -0.3]
    assert all(r["filter_step"] == "clip_score" and r["reason"].startswith("low image-caption similarity")
               for r in excluded)
    assert stats.rows_dropped == 2 and stats.reasons == {"low image-caption similarity": 2}
    assert stats.counters == {"clip_score_in": 4, "clip_score_dropped": 2}


# --- the partitions -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def filtered(env):
    """Every partition filtered once (a cold cache), with an unmapped-language row planted in raw WIT."""
    profile, _, _, lake, _ = env
    rows = read_parquet(lake.raw("wit", "rows.parquet"))
    planted = {**rows[0], "language": "xx", "lang": None, "page_url": "https://xx.wikipedia.org/wiki/Planted"}
    write_parquet(lake.raw("wit", "rows.parquet"), rows + [planted],
                  row_id=lambda r: r["image_url"] + "\0" + str(r["lang"]) + "\0" + r["caption"])
    results = {lang: _fresh_partition(lake, lang, profile.wit, languages=profile.languages) for lang in LANGS}
    return profile, lake, results, len(rows) + 1


def test_every_row_is_kept_dropped_or_quarantined_with_a_reason(filtered):
    profile, lake, results, n_raw = filtered
    for lang, r in results.items():
        s = r.stats
        assert s.accounted and s.rows_in == s.rows_kept + s.rows_dropped + s.rows_quarantined, lang
        folder = partition_dir(lake, lang)
        assert len(read_jsonl(folder / "quarantine.jsonl")) == s.rows_quarantined
        assert len(read_jsonl(folder / "dropped.jsonl")) == s.rows_dropped
        assert len(read_parquet(folder / "kept.parquet")) == s.rows_kept
    # the partitions together account for every raw row, the planted one included
    assert sum(r.stats.rows_in for r in results.values()) == n_raw
    quarantined = [q for lang in LANGS for q in read_jsonl(partition_dir(lake, lang) / "quarantine.jsonl")]
    reasons = {q["reason"] for q in quarantined}
    assert any(r.startswith("unknown language: WIT code 'xx'") for r in reasons)
    assert any(r.startswith("image not fetched: download failed (http 404)") for r in reasons)
    assert any(r.startswith("image not fetched: image undecodable") for r in reasons)  # the truncated JPEG
    assert any(r.startswith("image not fetched: download failed (timeout)") for r in reasons)
    dropped = [d for lang in LANGS for d in read_jsonl(partition_dir(lake, lang) / "dropped.jsonl")]
    kinds = {reason_kind(d["reason"]) for d in dropped}
    assert {"mojibake", "too short"} <= kinds  # the toy world's corrupted and stub captions
    assert all(d["score"] is None for d in dropped if d["filter_step"] == "text_quality")
    assert all(isinstance(d["score"], float) for d in dropped if d["filter_step"] == "clip_score")


def test_kept_rows_carry_what_the_shard_writer_reads(filtered):
    _, lake, results, _ = filtered
    lang = max(results, key=lambda k: results[k].stats.rows_kept)
    with (partition_dir(lake, lang) / "kept.parquet").open("rb") as f:
        table = pq.read_table(f)
    assert tuple(c for c in table.column_names if not c.startswith("_")) == KEPT_COLUMNS
    row = table.to_pylist()[0]
    assert row["lang"] == lang and row["score"] >= 0.0 and row["id"].startswith("wit/")
    assert Image.open(io.BytesIO(row["image"])).size == (224, 224)
    assert (partition_dir(lake, lang) / "scores.png").read_bytes().startswith(b"\x89PNG")


def test_score_cache_makes_reruns_free_and_rethresholds_without_the_model(filtered):
    profile, lake, results, _ = filtered
    first = {lang: r.stats for lang, r in results.items()}
    assert sum(s.model_calls for s in first.values()) > 0
    second = {lang: _fresh_partition(lake, lang, profile.wit, languages=profile.languages) for lang in LANGS}
    for lang, r in second.items():
        assert r.stats.model_calls == 0, lang
        assert r.stats.cache_hits == r.stats.counters.get("pairs", 0) == first[lang].model_calls + first[lang].cache_hits
        assert r.data_version == results[lang].data_version, "an unchanged re-run writes the same content"
    # a new threshold: nothing scored, another kept set
    lang = "eng_Latn"
    kept, low = partition_scores(lake, lang)
    assert kept and low is not None
    stricter = profile.wit.model_copy(update={"threshold": sorted(kept)[len(kept) // 2]})
    third = _fresh_partition(lake, lang, stricter, languages=profile.languages)
    assert third.stats.model_calls == 0 and third.stats.cache_hits == second[lang].stats.cache_hits
    assert 0 < third.stats.rows_kept < second[lang].stats.rows_kept
    # exactly at the threshold: kept
    assert min(partition_scores(lake, lang)[0]) == stricter.threshold
    with ScoreCache(score_cache_path(lake)) as cache:
        assert cache.count() == sum(s.model_calls for s in first.values())
    _fresh_partition(lake, lang, profile.wit, languages=profile.languages)  # restore for the other tests


def test_score_cache_keys_captions_by_language(tmp_path):
    assert caption_key("Un cercle.", "fra_Latn") != caption_key("Un cercle.", "spa_Latn")
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("m", [("img", "cap", 0.25), ("img", "cap", 0.9)])  # the first score stored wins
        assert cache.get_many("m", [("img", "cap"), ("img", "other")]) == {("img", "cap"): 0.25}
        assert cache.get_many("other-model", [("img", "cap")]) == {}


def test_toy_filter_separates_matched_from_mismatched(filtered):
    """On the toy world's ground truth (a weak tiny model here; the profile's model must reach 90%)."""
    _, lake, _, _ = filtered
    truth = filter_truth(lake, LANGS)["all"]
    assert truth["matched"] + truth["mismatched"] > 0
    assert truth["matched_kept_share"] + truth["mismatched_dropped_share"] > 1.2


def test_an_unknown_partition_language_is_refused(env):
    profile, _, _, lake, _ = env
    with pytest.raises(ValueError, match="not a language of this profile"):
        filter_wit_partition("deu_Latn", lake, _engine(lake), profile.wit, log=quiet)


# --- Dagster ------------------------------------------------------------------------------------------

def test_wit_filtered_partitions_materialise_with_checks_and_plots(env, filtered):
    _, defs, instance, _, upstream = env
    assert _meta(upstream, "wit_images")["rows_quarantined"].value == 3  # 404, truncated, time-out
    job = defs.resolve_implicit_global_asset_job_def()
    first = job.execute_in_process(run_config=QUIET, instance=instance, partition_key="fra_Latn",
                                   asset_selection=[dg.AssetKey("wit_filtered")])
    assert first.success
    md = _meta(first, "wit_filtered")
    assert md["rows_in"].value == md["rows_kept"].value + md["rows_dropped"].value + md["rows_quarantined"].value
    assert "data:image/png;base64," in md["score_histogram"].value and "images_per_s" in md
    assert md["model_calls"].value == 0  # the cache filled by the tests above
    checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
    assert checks["rows_accounted"].passed and "toy_ground_truth" in checks
    second = job.execute_in_process(run_config=QUIET, instance=instance, partition_key="fra_Latn",
                                    asset_selection=[dg.AssetKey("wit_filtered")])
    version = lambda r: next(e.materialization.tags["dagster/data_version"] for e in r.get_asset_materialization_events())  # noqa: E731
    assert version(first) == version(second)


def test_an_unchanged_url_list_is_not_downloaded_again(env):
    _, defs, instance, _, _ = env
    job = defs.resolve_implicit_global_asset_job_def()
    again = job.execute_in_process(run_config=QUIET, instance=instance, asset_selection=[dg.AssetKey("wit_images")])
    md = _meta(again, "wit_images")
    assert md["reused"].value == 1 and md["rows_quarantined"].value == 3

