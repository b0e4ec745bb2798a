"""Profiles: both shipped profiles load, and a broken one fails with a message naming the key or file."""
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_profile

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
