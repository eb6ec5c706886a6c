"""Tiny random Qwen3-TTS checkpoints: deterministic, complete, loadable by the real mlx-audio loader."""

from __future__ import annotations

import json

import pytest

from pipeline.testing import tiny
from pipeline.errors import ModelError

pytestmark = pytest.mark.tiny


def test_folders_complete_and_small(tiny_models):
    for kind in tiny.KINDS:
        folder = tiny_models / kind
        assert tiny.is_complete(folder, kind)
        for name in tiny.REQUIRED_FILES:
            assert (folder / name).is_file(), name
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert 1e6 < size < 20e6, (kind, size)
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "qwen3_tts"


def test_build_is_deterministic_and_skips_complete_folders(tiny_models, tmp_path):
    out = tiny.make_tiny_models(tmp_path / "again")
    for kind, folder in out.items():
        for name in ("model.safetensors", "speech_tokenizer/model.safetensors", "tokenizer.json", "config.json"):
            assert (folder / name).read_bytes() == (tiny_models / kind / name).read_bytes(), (kind, name)
    before = {k: (f / "model.safetensors").stat().st_mtime_ns for k, f in out.items()}
    tiny.make_tiny_models(tmp_path / "again")
    assert before == {k: (f / "model.safetensors").stat().st_mtime_ns for k, f in out.items()}


def test_incomplete_folder_is_rebuilt(tmp_path):
    out = tiny.make_tiny_models(tmp_path)
    (out["base"] / "merges.txt").unlink()
    assert not tiny.is_complete(out["base"], "base")
    tiny.make_tiny_models(tmp_path)
    assert tiny.is_complete(out["base"], "base")


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="refusing to overwrite"):
        tiny.make_tiny_models(tmp_path)
    assert (tmp_path / "base" / "notes.txt").read_text() == "mine"


def test_loads_with_real_mlx_audio(tiny_models):
    from mlx_audio.tts.utils import load

    model = load(str(tiny_models / "custom-voice"))
    assert model.tokenizer is not None and model.speech_tokenizer is not None
    assert model.config.tts_model_type == "custom_voice"
    assert sorted(model.get_supported_speakers()) == sorted(tiny.PRESET_SPEAKERS)
    ids = tiny.special_token_ids()
    # The model slices `<|im_start|>assistant\n` as exactly 3 tokens and the chat tail as 5.
    encoded = model.tokenizer.encode("<|im_start|>assistant\nHello, world.<|im_end|>\n<|im_start|>assistant\n")
    assert encoded[0] == ids["<|im_start|>"] and len(encoded[:3]) == 3
    assert encoded[-5:] == [ids["<|im_end|>"], encoded[2], ids["<|im_start|>"], encoded[1], encoded[2]]
    assert model.tokenizer.decode(encoded[1:2]) == "assistant"
    assert model.tokenizer.decode(encoded[2:3]) == "\n"
