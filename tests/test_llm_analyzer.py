"""LLM analyzer: JSON-only answers validated against the profile schema, one repair retry, heuristic fallback.
A queue-driven fake client drives the logic; one test loads a tiny random mlx-lm model built here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from fakes_casting import QueueClient
from pipeline.analysis.heuristic import HeuristicAnalyzer
from pipeline.analysis.llm import LLMAnalyzer, MlxLmClient, build_prompt
from pipeline.analysis.profile import CharacterProfile
from pipeline.errors import ModelError
from pipeline.evidence import Evidence, Introduction

EVIDENCE = Evidence(
    name="MARGARET", cues=("MARGARET",), lines=("Forty-one years I have kept this light.", "Still here, Otto."),
    parentheticals=("muttering",), action_mentions=("Margaret grabs the handset.",), scenes=("EXT. GALLERY",),
    introduction=Introduction("MARGARET HALE (70s), a weathered, stubborn old keeper with a dry wit, polishes the "
                              "lens.", 12, "70s", ("weathered", "stubborn old keeper with a dry wit")),
)
VALID = {"gender": "female", "age_range": [70, 78], "traits": ["weathered", "dry"],
         "summary": "An old lighthouse keeper with a dry wit.", "confidence": {"gender": 0.9, "age_range": 0.8}}


def test_valid_json_answer_even_inside_a_fence():
    client = QueueClient("Sure!\n```json\n" + json.dumps(VALID) + "\n```")
    p = LLMAnalyzer(client, "tiny-llm").analyze(EVIDENCE)
    assert (p.gender, p.age_range, p.traits) == ("female", (70, 78), ("weathered", "dry"))
    assert p.summary == VALID["summary"]
    assert p.analyzer.startswith("llm-") and "tiny-llm" in p.analyzer
    assert p.confidence("gender") == 0.9 and p.confidence("traits") == 0.6  # default when the model gives none
    assert len(client.prompts) == 1
    prompt = client.prompts[0]
    assert "MARGARET HALE (70s)" in prompt and "Still here, Otto." in prompt and "JSON" in prompt


def test_invalid_then_repaired():
    bad = dict(VALID, gender="robot")
    client = QueueClient(json.dumps(bad), json.dumps(VALID))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a repaired answer warns about nothing
        p = LLMAnalyzer(client, "tiny-llm").analyze(EVIDENCE)
    assert p.gender == "female"
    assert len(client.prompts) == 2
    assert "invalid" in client.prompts[1] and "robot" in client.prompts[1]


@pytest.mark.parametrize("first,second", [
    ("no json here", "still none"),
    (json.dumps(dict(VALID, age_range=[80, 20])), json.dumps(dict(VALID, extra_field=1))),
    ("{broken", json.dumps(dict(VALID, traits="dry"))),
])
def test_invalid_twice_falls_back_with_warning(first, second):
    client = QueueClient(first, second)
    with pytest.warns(UserWarning, match="heuristic"):
        p = LLMAnalyzer(client, "tiny-llm").analyze(EVIDENCE)
    assert p == HeuristicAnalyzer().analyze(EVIDENCE)
    assert len(client.prompts) == 2


def test_analyzer_id_names_the_model():
    assert LLMAnalyzer(QueueClient(), "a").id != LLMAnalyzer(QueueClient(), "b").id


def test_prompt_is_bounded():
    many = Evidence(name="X", cues=("X",), lines=tuple(f"Line {i} " + "word " * 200 for i in range(100)),
                    parentheticals=(), action_mentions=(), scenes=(), introduction=None)
    assert len(build_prompt(many)) < 5000


def _make_tiny_lm(folder: Path) -> Path:
    """A 1-layer llama with random weights and a 300-entry byte-level BPE, in mlx-lm's folder layout."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([json.dumps(VALID)] * 4, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}))
    config = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64,
              "num_attention_heads": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-5,
              "vocab_size": tok.get_vocab_size(), "rope_theta": 10000.0, "tie_word_embeddings": True,
              "eos_token_id": tok.token_to_id("<|endoftext|>")}
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_tiny_mlx_lm_model_loads_through_the_client(tmp_path):
    pytest.importorskip("mlx_lm")
    folder = _make_tiny_lm(tmp_path / "tiny-llm")
    client = MlxLmClient(str(folder), max_tokens=12)
    text = client.complete("Describe MARGARET.")
    assert isinstance(text, str)
    # random weights answer garbage: the analyzer repairs once, then falls back — through the real model both times
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = LLMAnalyzer(client, str(folder)).analyze(EVIDENCE)
    assert isinstance(p, CharacterProfile) and p.name == "MARGARET"
    if p.analyzer == HeuristicAnalyzer.id:
        assert any("heuristic" in str(w.message) for w in caught)


def test_missing_model_is_a_model_error(tmp_path):
    pytest.importorskip("mlx_lm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="analyzer"):
        MlxLmClient(str(tmp_path / "empty")).complete("hi")
