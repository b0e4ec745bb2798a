"""Profiles: both shipped profiles load, and a broken one fails with a message naming the key or file."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import REPO_ROOT, ConfigError, check_sources, load_profile

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_toy_is_the_default(monkeypatch):
    monkeypatch.delenv("MMG4_CONFIG", raising=False)
    profile = load_profile()
    assert profile.name == "toy" and profile.is_toy
    assert len(profile.languages) == 10


def test_paper_profile_is_valid_and_not_toy():
    profile = load_profile(CONFIGS / "paper.yaml")
    assert not profile.is_toy
    assert profile.sources.mmmu.path.startswith("hf://datasets/MMMU/MMMU")


def test_env_var_selects_profile(monkeypatch):
    monkeypatch.setenv("MMG4_CONFIG", str(CONFIGS / "paper.yaml"))
    assert load_profile().name == "paper"


def _write(tmp_path, data) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _toy():
    return yaml.safe_load((CONFIGS / "toy.yaml").read_text())


def test_unknown_key_is_named(tmp_path):
    data = _toy()
    data["download"]["thread"] = 4
    with pytest.raises(ConfigError, match=r"download\.thread: unknown key"):
        load_profile(_write(tmp_path, data))


def test_wrong_type_is_named(tmp_path):
    data = _toy()
    data["toy_world"]["scenes"] = "many"
    with pytest.raises(ConfigError, match=r"toy_world\.scenes"):
        load_profile(_write(tmp_path, data))


def test_missing_source_is_named(tmp_path):
    data = _toy()
    del data["sources"]["mmmu"]
    with pytest.raises(ConfigError, match=r"sources\.mmmu: required key is missing"):
        load_profile(_write(tmp_path, data))


def test_unknown_language_is_named(tmp_path):
    data = _toy()
    data["languages"] = ["deu_Latn"]
    with pytest.raises(ConfigError, match="deu_Latn"):
        load_profile(_write(tmp_path, data))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="profile file not found: .*nope.yaml"):
        load_profile(tmp_path / "nope.yaml")


@pytest.mark.parametrize("chunks, message", [({"llava": 4}, "unknown dataset.*llava"),
                                              ({"captions": 0}, "between 1 and 999")])
def test_bad_chunk_setting_is_named(tmp_path, chunks, message):
    data = _toy()
    data["translation"]["chunks"] = chunks
    with pytest.raises(ConfigError, match=rf"translation\.chunks.*{message}"):
        load_profile(_write(tmp_path, data))


def test_toy_nllb_settings_are_typed(tmp_path):
    data = _toy()
    settings = load_profile(_write(tmp_path, data)).translation.toy_nllb
    assert settings.d_model == data["translation"]["toy_nllb"]["d_model"] and settings.vocab_size == 1600
    data["translation"]["toy_nllb"]["d_modle"] = 64
    with pytest.raises(ConfigError, match=r"translation\.toy_nllb\.d_modle: unknown key"):
        load_profile(_write(tmp_path, data))
    data = _toy()
    data["translation"]["toy_nllb"]["steps"] = "many"
    with pytest.raises(ConfigError, match=r"translation\.toy_nllb\.steps"):
        load_profile(_write(tmp_path, data))
    data["translation"]["toy_nllb"]["steps"] = 0
    with pytest.raises(ConfigError, match=r"translation\.toy_nllb\.steps"):
        load_profile(_write(tmp_path, data))


@pytest.mark.parametrize("key, value", [("compute_type", "int9"), ("quantization", "int4"),
                                        ("quantization", "auto")])
def test_ctranslate2_types_are_checked_when_the_profile_loads(tmp_path, key, value):
    """A typo in a CTranslate2 type used to pass `dagster definitions validate` and fail at run time."""
    data = _toy()
    data["translation"][key] = value
    with pytest.raises(ConfigError, match=rf"translation\.{key}: Input should be .*'int8'.*\(got '{value}'\)"):
        load_profile(_write(tmp_path, data))


def test_raw_limits_have_defaults_and_are_typed(tmp_path):
    assert load_profile(CONFIGS / "toy.yaml").raw_limits.max_turn_chars == 20_000
    data = _toy()
    data["raw_limits"] = {"max_turns": 8, "max_turn_char": 5}
    with pytest.raises(ConfigError, match=r"raw_limits\.max_turn_char: unknown key"):
        load_profile(_write(tmp_path, data))
    del data["raw_limits"]["max_turn_char"]
    assert load_profile(_write(tmp_path, data)).raw_limits.max_turns == 8


def test_check_lists_every_missing_source_path_at_once(tmp_path):
    """`python -m pipeline.config check`: every missing input in one report and a non-zero exit."""
    data = _toy()
    data["lake_root"] = str(tmp_path / "lake")
    (tmp_path / "lake" / "toy_world" / "wit").mkdir(parents=True)
    (tmp_path / "lake" / "toy_world" / "wit" / "notes.txt").write_text("not a tsv")
    proc = subprocess.run([sys.executable, "-m", "pipeline.config", "check", str(_write(tmp_path, data))],
                          cwd=CONFIGS.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "source path(s) missing" in out
    for key in ("cc_sbu.url_list", "laion.url_list", "llava_instruct.path", "llava_instruct.image_root",
                "palo.path", "cambrian.path", "xstorycloze.path", "mmmu.path"):
        assert f"sources.{key}: {tmp_path}/lake/toy_world/" in out, key  # {lake} expanded
    assert f"sources.wit.path: {tmp_path}/lake/toy_world/wit/*.tsv (the glob matches no file)" in out
    assert f"sources.flores.folder: {tmp_path}/lake/toy_world/flores (no such folder)" in out


def test_check_passes_when_every_source_is_there(toy_lake):
    profile, _ = toy_lake
    assert check_sources(profile) == ([], [])


def test_check_reports_a_bad_profile_without_a_traceback(tmp_path):
    data = _toy()
    data["translation"]["compute_type"] = "int9"
    proc = subprocess.run([sys.executable, "-m", "pipeline.config", "check", str(_write(tmp_path, data))],
                          cwd=CONFIGS.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "translation.compute_type" in proc.stdout and "Traceback" not in proc.stderr


def test_a_profile_can_be_a_few_keys_over_another(tmp_path):
    """`base:` makes a profile an overlay of another file (relative to it); the shipped variant loads, and
    a profile that names itself or a bad key is refused with the file named."""
    variant = load_profile("configs/toy_every_language.yaml")
    toy = load_profile("configs/toy.yaml")
    assert variant.name == "toy_every_language" and variant.lake_root == "lake/toy_every_language"
    assert toy.translation.one_language_per_row == ("cambrian_image", "cambrian_text")
    assert variant.translation.one_language_per_row == ()  # a list in the overlay replaces the base's
    assert 10 * variant.toy_world.cambrian_rows == toy.toy_world.cambrian_rows
    assert variant.translation.chunks == toy.translation.chunks  # a mapping merges key by key
    assert variant.stages == toy.stages and variant.model == toy.model  # the rest is the base's
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match="goes round in a circle"):
        load_profile(tmp_path / "self.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"circle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_profile(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text(f"base: {REPO_ROOT / 'configs' / 'toy.yaml'}\ntoy_world: {{cambrian_row: 1}}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*\n.*toy_world\.cambrian_row: unknown key"):
        load_profile(tmp_path / "bad.yaml")
