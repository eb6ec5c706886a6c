"""Tiny random Qwen3-TTS checkpoints: Base, VoiceDesign and CustomVoice folders that load through the real
`mlx_audio.tts.utils.load` and run every generation path, a few MB each and built in seconds.

Why: real weights are gigabytes and unreachable from CI, yet the engine must exercise the real mlx-audio code.
The weights are random (a fixed numpy seed, so every build is byte-identical); the audio is noise-like but
finite, 24 kHz, and deterministic under `mx.random.seed`.

Layout mirrors the mlx-community repos:
    config.json  model.safetensors  generation_config.json  readthrough-tiny.json (our stamp)
    tokenizer.json tokenizer_config.json vocab.json merges.txt special_tokens_map.json
    speech_tokenizer/config.json  speech_tokenizer/model.safetensors  speech_tokenizer/preprocessor_config.json

Main weights are written under mlx-audio's own parameter names (taken from an instantiated `Model`, so they
always match the installed version). The speech tokenizer is loaded through `Qwen3TTSSpeechTokenizer.sanitize`,
which expects Hugging Face / PyTorch names and layouts, so we write the inverse of `sanitize` and check the
round trip at build time. Facts and gotchas: ../shared/notes/tiny-qwen3.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ModelError

MAKER_VERSION = 3  # 3: vocoder without decoder blocks (see speech_tokenizer_config)
STAMP = "readthrough-tiny.json"
KINDS = ("base", "voice-design", "custom-voice")
PRESET_SPEAKERS = ("ryan", "aiden", "vivian", "serena", "uncle_fu", "dylan", "eric", "ono_anna", "sohee")
SEED = 20260101

REQUIRED_FILES = (
    "config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "vocab.json", "merges.txt", "special_tokens_map.json", "speech_tokenizer/config.json",
    "speech_tokenizer/model.safetensors", "speech_tokenizer/preprocessor_config.json", STAMP,
)

# --- text tokenizer ---------------------------------------------------------------------------------------

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>")
BPE_SIZE = 512  # byte alphabet + merges; special tokens get ids BPE_SIZE.. (512..517)
TEXT_VOCAB = 576
# "assistant" must come first: its merges get the lowest ranks, so it always encodes as ONE token (the model
# slices `<|im_start|>assistant\n` as 3 tokens).
_WORDS = (
    "assistant user system the and you that was for are with his they this have from one had not but what "
    "all were when your can said there use each which she how their will other about out many then them these "
    "some her would make like him into time has look two more write see number way could people than first "
    "water been call who its now find long down day did get come made may part over new sound take only little "
    "work know place year live back give most very after thing our just name good sentence man think say great "
    "where help through much before line right too mean old any same tell boy follow came want show also around "
    "form three small set put end does another well large must big even such because turn here why ask went men "
    "read need land different home move try kind hand picture again change off play spell air away animal house "
    "point page letter mother answer found study still learn should world high every near add food between own "
    "below country plant last school father keep tree never start city earth eye light thought head under story "
    "saw left few while along might close something seem next hard open example begin life always those both "
    "paper together got group often run important until children side feet car mile night walk white sea began "
    "grow took river four carry state once book hear stop without second later miss idea enough eat face watch "
    "far real almost let above girl sometimes mountain cut young talk soon list song being leave family voice "
    "quick brown fox jumps over lazy dog sells seashells seashore wondered anyone choose"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenisation produces)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A deterministic byte-level BPE: 256 byte tokens, then left-to-right merge chains for a fixed word list."""
    b2u = _bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges: list[tuple[str, str]] = []
    forms = []
    for w in _WORDS:
        forms += [w, "Ġ" + w] if w != "assistant" else [w]
    for form in forms:
        pieces = list(form)
        while len(pieces) > 1 and len(vocab) < BPE_SIZE:
            merged = pieces[0] + pieces[1]
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((pieces[0], pieces[1]))
            pieces = [merged] + pieces[2:]
        if len(vocab) >= BPE_SIZE:
            break
    return vocab, merges


def _tokenizer_files() -> dict[str, str]:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab, merges = _bpe_vocab()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    # Pad to BPE_SIZE so the special ids are fixed (512..517) whatever the word list produced.
    filler = [f"<|reserved_{i}|>" for i in range(BPE_SIZE - len(vocab))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in filler])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    added = {
        str(tok.token_to_id(t)): {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True,
        }
        for t in filler + list(SPECIAL_TOKENS)
    }
    tokenizer_config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "model_max_length": 32768,
    }
    special_map = {
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
    }
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return {
        "tokenizer.json": tok.to_str(pretty=True),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2, ensure_ascii=False),
        "special_tokens_map.json": json.dumps(special_map, indent=2),
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": merges_txt,
    }


def special_token_ids() -> dict[str, int]:
    """Ids of the special tokens in the tiny tokenizer (they follow the padded 512-entry BPE)."""
    return {t: BPE_SIZE + i for i, t in enumerate(SPECIAL_TOKENS)}


# --- configs ----------------------------------------------------------------------------------------------

LANGUAGE_IDS = {
    "english": 66, "german": 69, "spanish": 70, "chinese": 71, "japanese": 74, "french": 77, "korean": 80,
    "russian": 85, "italian": 86, "portuguese": 87, "sichuan_dialect": 78, "beijing_dialect": 90,
}
CODEBOOK = 64
CODEC_VOCAB = CODEBOOK + 1024  # generation suppresses [vocab-1024, vocab) except EOS: specials live there
CODEC_EOS = 166
# A purely random talker almost never samples EOS, or does so at a fixed point of a prompt, so tiny "lines" would
# run to max_tokens. To make them end after a random handful of frames, hidden dim 0 is reserved as an
# "end" signal: only a few TERMINAL_CODES write into it (codec embedding), nothing else does (other embeddings,
# attention and MLP outputs, text projection are zero there), and the EOS row of the codec head reads it.
# After a terminal code the next frame is EOS; per frame that is ~len(TERMINAL_CODES)/65, so lines end after
# ~10 frames on average and rarely run past 30.
TERMINAL_CODES = (7, 17, 27, 37, 47, 57)
TERMINAL_LEVEL = 4.0
EOS_GAIN = 3.0


def main_config(kind: str) -> dict:
    """config.json for one tiny model kind ("base", "voice-design", "custom-voice")."""
    ids = special_token_ids()
    talker = {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "text_hidden_size": 96, "text_vocab_size": TEXT_VOCAB,
        "vocab_size": CODEC_VOCAB, "num_code_groups": 16,
        "rope_scaling": {"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"},
        "codec_pad_id": 164, "codec_bos_id": 165, "codec_eos_token_id": CODEC_EOS, "codec_think_id": 170,
        "codec_nothink_id": 171, "codec_think_bos_id": 172, "codec_think_eos_id": 173,
        "codec_language_id": dict(LANGUAGE_IDS),
        "code_predictor_config": {
            "vocab_size": CODEBOOK, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_code_groups": 16,
        },
    }
    config = {
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_size": "0b6" if kind == "base" else "1b7",  # CustomVoice at 0b6 silently drops `instruct`
        "tts_model_type": {"base": "base", "voice-design": "voice_design", "custom-voice": "custom_voice"}[kind],
        "im_start_token_id": ids["<|im_start|>"],
        "im_end_token_id": ids["<|im_end|>"],
        "tts_pad_token_id": ids["<tts_pad>"],
        "tts_bos_token_id": ids["<tts_text_bos>"],
        "tts_eos_token_id": ids["<tts_text_eod>"],
        "sample_rate": 24000,
        "talker_config": talker,
        "readthrough_tiny": {"maker_version": MAKER_VERSION, "kind": kind},
    }
    if kind == "base":
        # Gotcha: kernel-1 convs need > 64 input channels (mlx-audio guesses conv layout from shape).
        config["speaker_encoder_config"] = {
            "mel_dim": 128, "enc_dim": 64, "enc_channels": [72, 72, 72, 72, 216],
            "enc_kernel_sizes": [5, 3, 3, 3, 1], "enc_dilations": [1, 2, 3, 4, 1], "enc_attention_channels": 72,
            "enc_res2net_scale": 4, "enc_se_channels": 72, "sample_rate": 24000,
        }
    if kind == "custom-voice":
        talker["spk_id"] = {name: 200 + i for i, name in enumerate(PRESET_SPEAKERS)}
        talker["spk_is_dialect"] = {name: False for name in PRESET_SPEAKERS}
    return config


def speech_tokenizer_config(fast_codec: bool = True) -> dict:
    """speech_tokenizer/config.json. fast_codec: 80 samples a frame (cheap vocoder); else the real 1920.

    The fast codec has NO decoder blocks (`upsample_rates` empty): all of its 80× upsampling is done by the
    latent-side transposed convs + ConvNeXt blocks (`upsampling_ratios`), at latent/decoder width 8. Why: each
    decoder block ends in three residual units whose kernel-1 conv must have > 64 channels (gotcha 1 in
    ../shared/notes/tiny-qwen3.md), so a block at the output rate costs ~14 ms a frame on a 2-core CPU (k=7 convs,
    66 channels, dilations 3 and 9 run twice as slow) — about 1 s a line, which swamped every timing of the
    talker. This shape decodes ~0.25 ms a frame and still goes through mlx-audio's own decoder (quantizer,
    pre-conv, pre-transformer, upsampling, output snake + conv). Widths stay above the kernel sizes and the
    upsampling factors (sanitize guesses conv layout from shape).
    """
    if fast_codec:
        upsample = {"upsample_rates": [], "upsampling_ratios": [4, 4, 5], "decoder_dim": 8, "latent_dim": 8}
        rate = 80
    else:
        # 4 blocks halve the width each time; the last block (decoder_dim/16) must stay > 64 (gotcha 1).
        upsample = {"upsample_rates": [8, 5, 4, 3], "upsampling_ratios": [2, 2], "decoder_dim": 1056}
        rate = 1920
    return {
        "model_type": "qwen3_tts_tokenizer_12hz",
        "encoder_valid_num_quantizers": 16,
        "input_sample_rate": 24000,
        "output_sample_rate": 24000,
        "decode_upsample_rate": rate,
        "encode_downsample_rate": 1920,
        "encoder_config": {
            "hidden_size": 32, "num_filters": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 64, "codebook_dim": 16,
            "codebook_size": CODEBOOK, "num_quantizers": 16, "upsampling_ratios": [8, 6, 5, 4],
        },
        "decoder_config": {
            "latent_dim": 32, "codebook_dim": 144, "codebook_size": CODEBOOK, "hidden_size": 32,
            "intermediate_size": 64, "head_dim": 16, "num_attention_heads": 2, "num_key_value_heads": 2,
            "num_hidden_layers": 1, "num_quantizers": 16, **upsample,
        },
    }


GENERATION_CONFIG = {
    "do_sample": True, "temperature": 0.9, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.05,
    "subtalker_dosample": True, "subtalker_temperature": 0.9, "subtalker_top_k": 50, "subtalker_top_p": 1.0,
    "max_new_tokens": 256,
}
PREPROCESSOR_CONFIG = {
    "feature_extractor_type": "EncodecFeatureExtractor", "feature_size": 1, "padding_side": "right",
    "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 24000,
}


# --- weights ----------------------------------------------------------------------------------------------

def _init_value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A sane random value for one parameter, by role (norm gains 1, biases 0, weights ~ 1/sqrt(fan-in))."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "initialized" or leaf == "cluster_usage":
        return np.ones(shape, np.float32)
    if leaf in ("alpha", "beta"):  # SnakeBeta keeps them as logs: exp(0) = 1
        return np.zeros(shape, np.float32)
    if leaf == "bias":
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    if leaf in ("scale", "gamma"):  # layer scales
        return np.full(shape, 0.1, np.float32)
    if len(shape) == 1:  # norm weights
        return np.ones(shape, np.float32)
    if leaf == "embedding_sum" or "codebook" in name:
        return rng.standard_normal(shape).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _random_params(module, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from mlx.utils import tree_flatten

    return {k: _init_value(k, tuple(v.shape), rng) for k, v in tree_flatten(module.parameters())}


def _main_weights(config: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import mlx.core as mx
    from mlx_audio.tts.models.qwen3_tts.config import ModelConfig
    from mlx_audio.tts.models.qwen3_tts.qwen3_tts import Model

    cfg = {k: v for k, v in config.items() if k != "readthrough_tiny"}
    weights = _random_params(Model(ModelConfig(**cfg)), rng)
    _install_end_signal(weights)
    # Round trip: mlx-audio's sanitize must leave MLX-named, MLX-layout weights untouched.
    back = Model.sanitize({k: mx.array(v) for k, v in weights.items()})
    _check_round_trip("model", weights, back)
    return weights


def _install_end_signal(weights: dict[str, np.ndarray]) -> None:
    """Reserve hidden dim 0 of the talker as the "end of line" signal (see TERMINAL_CODES)."""
    for name, w in weights.items():
        if name.startswith("talker.code_predictor.model.codec_embedding."):
            w[:, 0] = 0.0
        elif name.startswith("talker.model.layers.") and name.endswith(("self_attn.o_proj.weight",
                                                                        "mlp.down_proj.weight")):
            w[0, :] = 0.0
        elif name.startswith("talker.text_projection.linear_fc2."):
            w[0] = 0.0
    embedding = weights["talker.model.codec_embedding.weight"]
    embedding[:, 0] = 0.0
    embedding[list(TERMINAL_CODES), 0] = TERMINAL_LEVEL
    head = weights["talker.codec_head.weight"]
    head[CODEC_EOS] = 0.0
    head[CODEC_EOS, 0] = EOS_GAIN


_SEANET_CONV = {"init_conv1d": 0, "layers.0.downsample": 3, "layers.1.downsample": 6, "layers.2.downsample": 9,
                "layers.3.downsample": 12, "final_conv1d": 14}
_SEANET_RESIDUAL = {0: 1, 1: 4, 2: 7, 3: 10}  # encoder layer -> HF SEANet index
_SEANET_BLOCK = {0: 1, 1: 3}  # residual conv -> HF block index
_TRANSFORMER_NAMES = {
    "self_attn.out_proj.weight": "self_attn.o_proj.weight",
    "gating.linear1.weight": "mlp.fc1.weight",
    "gating.linear2.weight": "mlp.fc2.weight",
    "norm1.weight": "input_layernorm.weight",
    "norm1.bias": "input_layernorm.bias",
    "norm2.weight": "post_attention_layernorm.weight",
    "norm2.bias": "post_attention_layernorm.bias",
    "layer_scale_1.scale": "self_attn_layer_scale.scale",
    "layer_scale_2.scale": "mlp_layer_scale.scale",
}


def _to_torch_conv(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v.transpose(0, 2, 1))  # MLX (out, k, in) -> torch (out, in, k)


def _encoder_to_hf(name: str, v: np.ndarray) -> dict[str, np.ndarray]:
    """One MLX encoder_model.* parameter -> its Hugging Face name(s) and layout (inverse of sanitize)."""
    rest = name[len("encoder_model."):]
    if rest.startswith("encoder."):
        sub = rest[len("encoder."):]
        m = re.fullmatch(r"layers\.(\d)\.residuals\.0\.block\.(\d)\.conv\.conv\.(weight|bias)", sub)
        if m:
            n, b = _SEANET_RESIDUAL[int(m[1])], _SEANET_BLOCK[int(m[2])]
            key = f"encoder.encoder.layers.{n}.block.{b}.conv.{m[3]}"
        else:
            base, suffix = sub.rsplit(".conv.conv.", 1)
            key = f"encoder.encoder.layers.{_SEANET_CONV[base]}.conv.{suffix}"
        return {key: _to_torch_conv(v) if v.ndim == 3 else v}
    if rest.startswith("encoder_transformer.transformer.layers."):
        m = re.fullmatch(r"encoder_transformer\.transformer\.layers\.(\d+)\.(.+)", rest)
        prefix = f"encoder.encoder_transformer.layers.{m[1]}."
        if m[2] == "self_attn.in_proj.weight":
            q, k, vv = np.split(v, 3, axis=0)
            return {prefix + "self_attn.q_proj.weight": q, prefix + "self_attn.k_proj.weight": k,
                    prefix + "self_attn.v_proj.weight": vv}
        return {prefix + _TRANSFORMER_NAMES[m[2]]: v}
    if rest.startswith("downsample.conv.conv.conv."):
        return {"encoder.downsample." + rest[len("downsample.conv.conv."):]: _to_torch_conv(v)}
    m = re.fullmatch(r"quantizer\.(rvq_first|rvq_rest)\.(.+)", rest)
    if m:
        group = "semantic" if m[1] == "rvq_first" else "acoustic"
        base = f"encoder.quantizer.{group}_residual_vector_quantizer."
        if m[2] in ("input_proj.weight", "output_proj.weight"):
            return {base + m[2]: _to_torch_conv(v)}
        c = re.fullmatch(r"vq\.layers\.(\d+)\.codebook\.(embedding_sum|cluster_usage|initialized)", m[2])
        if c and c[2] != "initialized":  # sanitize skips `initialized`; the module default is used
            leaf = "embed_sum" if c[2] == "embedding_sum" else "cluster_usage"
            return {f"{base}layers.{c[1]}.codebook.{leaf}": v}
        if c:
            return {}
    raise ValueError(f"tiny speech tokenizer: no Hugging Face name known for {name}")


def _decoder_to_hf(name: str, v: np.ndarray) -> dict[str, np.ndarray]:
    m = re.fullmatch(r"(decoder\.quantizer\..+)\.codebook\.embed\.weight", name)
    if m:  # decoder codebooks are stored as usage-weighted sums; usage 1 keeps the embedding exact
        return {f"{m[1]}._codebook.embedding_sum": v,
                f"{m[1]}._codebook.cluster_usage": np.ones((v.shape[0],), np.float32)}
    if v.ndim == 3:
        transposed = ("upsample" in name and ".0.conv.weight" in name) or (
            "decoder.decoder" in name and "block.1.conv.weight" in name)
        if transposed:  # ConvTranspose1d: MLX (out, k, in) -> torch (in, out, k)
            return {name: np.ascontiguousarray(v.transpose(2, 0, 1))}
        return {name: _to_torch_conv(v)}
    return {name: v}


def _speech_tokenizer_weights(config: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import mlx.core as mx
    from mlx_audio.tts.models.qwen3_tts.config import Qwen3TTSTokenizerConfig
    from mlx_audio.tts.models.qwen3_tts.speech_tokenizer import Qwen3TTSSpeechTokenizer

    cfg = Qwen3TTSTokenizerConfig(**{k: v for k, v in config.items() if k != "model_type"})
    params = _random_params(Qwen3TTSSpeechTokenizer(cfg), rng)
    hf: dict[str, np.ndarray] = {}
    for name, v in params.items():
        hf.update(_encoder_to_hf(name, v) if name.startswith("encoder_model.") else _decoder_to_hf(name, v))
    back = Qwen3TTSSpeechTokenizer.sanitize({k: mx.array(v) for k, v in hf.items()})
    expected = {k: v for k, v in params.items() if not k.endswith(".initialized")}
    _check_round_trip("speech tokenizer", expected, back)
    return hf


def _check_round_trip(what: str, expected: dict[str, np.ndarray], back) -> None:
    """The installed mlx-audio must map what we write back to exactly the parameters we generated."""
    missing = sorted(set(expected) - set(back))
    extra = sorted(set(back) - set(expected))
    bad = [k for k in expected if k in back and (tuple(back[k].shape) != expected[k].shape
                                                   or not np.array_equal(np.array(back[k]), expected[k]))]
    if missing or extra or bad:
        raise ModelError(
            f"Tiny {what} weights do not survive mlx-audio's sanitize (missing {missing[:3]}, unexpected "
            f"{extra[:3]}, changed {bad[:3]}). The installed mlx-audio changed its weight layout; update "
            f"pipeline/testing/tiny.py (made for mlx-audio 0.6.2)."
        )


# --- folders ----------------------------------------------------------------------------------------------

def _stamp(kind: str, fast_codec: bool) -> dict:
    return {"maker": "readthrough.tiny", "maker_version": MAKER_VERSION, "kind": kind, "fast_codec": fast_codec}


def is_complete(folder: Path, kind: str, fast_codec: bool = True) -> bool:
    """True when `folder` holds every file of a tiny checkpoint written by this maker version."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp == _stamp(kind, fast_codec) and all((folder / f).is_file() for f in REQUIRED_FILES)


def _write_folder(folder: Path, kind: str, fast_codec: bool, tokenizer_files: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng([SEED, KINDS.index(kind)])
    config = main_config(kind)
    st_config = speech_tokenizer_config(fast_codec)
    (folder / "speech_tokenizer").mkdir(parents=True)
    save_file(_main_weights(config, rng), str(folder / "model.safetensors"), metadata={"format": "mlx"})
    save_file(_speech_tokenizer_weights(st_config, rng), str(folder / "speech_tokenizer" / "model.safetensors"),
              metadata={"format": "pt"})
    texts = {
        "config.json": json.dumps(config, indent=2),
        "generation_config.json": json.dumps(GENERATION_CONFIG, indent=2),
        "speech_tokenizer/config.json": json.dumps(st_config, indent=2),
        "speech_tokenizer/preprocessor_config.json": json.dumps(PREPROCESSOR_CONFIG, indent=2),
        **tokenizer_files,
    }
    for name, text in texts.items():
        (folder / name).write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    # The stamp goes last: a folder without it is never taken for complete.
    (folder / STAMP).write_text(json.dumps(_stamp(kind, fast_codec), indent=2) + "\n")


def _ours(folder: Path) -> bool:
    """A folder we may replace: empty, or stamped by this maker (any version)."""
    if not any(folder.iterdir()):
        return True
    with contextlib.suppress(OSError, ValueError):
        return json.loads((folder / STAMP).read_text()).get("maker") == "readthrough.tiny"
    return False


def make_tiny_models(root: str | os.PathLike, *, fast_codec: bool = True) -> dict[str, Path]:
    """Write `root/base`, `root/voice-design` and `root/custom-voice`; return {kind: folder}.

    Deterministic (fixed seed: same bytes every build) and quick (about a second a folder). A folder that already
    holds a complete checkpoint from this maker version is left alone. Each folder is built beside its target and
    renamed into place, so a crash never leaves a half-written checkpoint that looks complete.
    `fast_codec=False` writes the real 1920-samples-a-frame vocoder shape (much slower to run on a CPU).
    """
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    tokenizer_files = None
    for kind in KINDS:
        folder = root / kind
        out[kind] = folder
        if is_complete(folder, kind, fast_codec):
            continue
        if folder.exists() and not _ours(folder):
            raise ModelError(
                f"{folder} exists and is not a tiny checkpoint made by readthrough; refusing to overwrite it. "
                f"Pass an empty or new directory to make-tiny-models."
            )
        tokenizer_files = tokenizer_files or _tokenizer_files()
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}.", dir=root))
        try:
            _write_folder(tmp / "m", kind, fast_codec, tokenizer_files)
            if folder.exists():
                shutil.rmtree(folder)
            try:
                os.rename(tmp / "m", folder)
            except OSError:
                if not is_complete(folder, kind, fast_codec):  # lost a race to a complete copy: fine
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = ["KINDS", "MAKER_VERSION", "PRESET_SPEAKERS", "is_complete", "main_config", "make_tiny_models",
           "speech_tokenizer_config", "special_token_ids"]
