"""Settings: one source of defaults, every number bounded, everything validated at load, errors that name the file
and the key (with a did-you-mean)."""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipeline.config import DEFAULT_SETTINGS, Settings, load_settings
from pipeline.errors import SettingsError


def _sections(model: type[BaseModel], prefix: str = ""):
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _sections(info.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info


def _is_number(annotation) -> bool:
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
        _is_number(a) for a in typing.get_args(annotation))


def test_default_toml_holds_every_key_with_the_models_default():
    """The file that documents the defaults is the models' defaults, key for key (no key missing, none extra)."""
    documented = tomllib.loads(DEFAULT_SETTINGS.read_text(encoding="utf-8"))
    assert documented == Settings().model_dump(mode="json")


def test_default_toml_ships_inside_the_package():
    import pipeline

    assert DEFAULT_SETTINGS.is_file() and DEFAULT_SETTINGS.parent.parent == Path(pipeline.__file__).parent


def test_every_number_has_bounds():
    unbounded = []
    for key, info in _sections(Settings):
        if not _is_number(info.annotation):
            continue
        kinds = {type(m).__name__ for m in info.metadata}
        if not ({"Ge", "Gt"} & kinds and {"Le", "Lt"} & kinds):
            unbounded.append(key)
    assert unbounded == []


@pytest.mark.parametrize("key, value, words", [
    ("pauses.beat", -5, "greater than or equal to 0"),
    ("loudness.line_lufs", 50, "less than or equal to -5"),
    ("render.seconds_per_word", 1e308, "less than or equal to 10"),
    ("render.top_p", 0, "greater than 0"),
    ("output.dual_pan", 2, "less than or equal to 1"),
    ("regression.speaker_min_similarity", 3, "less than or equal to 1"),
])
def test_values_out_of_range_are_errors_naming_file_key_and_value(tmp_path, key, value, words):
    section, leaf = key.split(".")
    path = tmp_path / "my.toml"
    path.write_text(f"[{section}]\n{leaf} = {value!r}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and key in message and words in message and repr(value) in message
    with pytest.raises(SettingsError, match="command-line flags"):
        load_settings(overrides={key: value})


def test_unknown_key_says_did_you_mean_with_file_and_key(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text("[render]\nbatchsize = 4\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert str(info.value) == f"Unknown setting 'render.batchsize' in {path} — did you mean 'render.batch_size'?"


def test_unknown_section_and_flag_are_errors(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text("[pause]\nbeat = 1.0\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"Unknown setting 'pause' in .*my\.toml — did you mean 'pauses'\?"):
        load_settings(path)
    with pytest.raises(SettingsError, match="'render.temprature' in command-line flags — did you mean "
                                            "'render.temperature'"):
        load_settings(overrides={"render.temprature": 0.5})


def test_free_form_tables_accept_any_key(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('[deploy.env]\nHF_HOME = "/Volumes/models"\n', encoding="utf-8")
    assert load_settings(path).deploy.env == {"HF_HOME": "/Volumes/models"}


def test_master_formats_are_checked_at_load():
    with pytest.raises(SettingsError, match="output.master_formats.*m4a"):
        load_settings(overrides={"output.master_formats": ["wav", "m4a"]})
    with pytest.raises(SettingsError, match="output.master_formats"):
        load_settings(overrides={"output.master_formats": []})
    assert load_settings(overrides={"output.master_formats": ["WAV", ".flac"]}).output.master_formats == (
        "wav", "flac")


def test_language_is_checked_at_load():
    with pytest.raises(SettingsError, match="render.language.*not a language tag"):
        load_settings(overrides={"render.language": "English please"})
    assert load_settings(overrides={"render.language": "en-GB"}).render.language == "en-GB"
    assert load_settings(overrides={"render.language": "nl", "render.engine": "preview"}).render.language == "nl"
    with pytest.raises(SettingsError, match="not one Qwen3-TTS speaks"):
        load_settings(overrides={"render.language": "nl", "render.engine": "qwen3"})


def test_acx_range_must_be_ordered():
    with pytest.raises(SettingsError, match="loudness.acx_rms_range.*low <= high"):
        load_settings(overrides={"loudness.acx_rms_range": [-18.0, -23.0]})


def test_offscreen_band_must_be_ordered():
    with pytest.raises(SettingsError, match="offscreen.*low_hz = 2000 must be below high_hz = 1500"):
        load_settings(overrides={"offscreen.low_hz": 2000.0, "offscreen.high_hz": 1500.0})
    assert load_settings(overrides={"offscreen.low_hz": 0.0, "offscreen.high_hz": 1000.0}).offscreen.low_hz == 0.0


def test_a_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text("[render]\nbatch_size = 4\n", encoding="utf-8")
    s = load_settings(path)
    assert s.render.batch_size == 4 and s.render.temperature == Settings().render.temperature


def test_target_lufs_out_of_range_and_the_broadcast_preset():
    with pytest.raises(SettingsError, match=r"loudness.target_lufs: Input should be less than or equal to -5.*50"):
        load_settings(overrides={"loudness.target_lufs": 50, "loudness.preset": "custom"})
    with pytest.raises(SettingsError, match='loudness: .*preset "broadcast" is -16 LUFS.*set loudness.preset = "custom"'):
        load_settings(overrides={"loudness.target_lufs": -20})
    assert load_settings(overrides={"loudness.target_lufs": -20, "loudness.preset": "custom"}).loudness.target_lufs == -20
