""".vox voice files (vox-format 0.4.0): export a clone VoiceLock, import a Qwen3-TTS clone prompt back into one.

A .vox is a ZIP: `manifest.json` first, then `embeddings/qwen3-tts/<0.6b|1.7b>/[<lang>/]clone-prompt.bin` and the
`sample-audio.wav` beside it (the reference audio; its transcript is the clone prompt's reference text).

clone-prompt.bin layout: `[u32 LE metaLen][metaLen bytes JSON, sorted keys: hasEmbedding, language, refCodesSize,
refText, speakerDataSize][refCodesSize bytes: safetensors {"ref_codes": [1, 16, T]}][speakerDataSize bytes:
safetensors {"speaker_embedding": [1, D]}]` (the speaker part only when hasEmbedding).

Only clone locks export: a .vox carries a clone prompt or a design description, and preset/preview locks have
neither (exporting them raises VoiceLockError). Archives without a clone prompt (e.g. the published examples, which
hold only a manifest) can be read with `read_vox` but not imported as a lock.
"""

from __future__ import annotations

import io
import json
import re
import struct
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, Audio, resample
from .errors import VoiceLockError
from .files import atomic_path, now_iso
from .languages import QWEN_LANGUAGES
from .lock import CODEC_VOCAB, MAX_REF_FRAMES, MAX_X_VECTOR, N_CODEBOOKS, VoiceLock, check_lock

VOX_VERSION = "0.4.0"
ENGINE = "qwen3-tts"
CLONE_PROMPT = "clone-prompt.bin"
SAMPLE_AUDIO = "sample-audio.wav"
LEGACY_CLONE_PROMPT = f"embeddings/{ENGINE}/{CLONE_PROMPT}"
LEGACY_SAMPLE_AUDIO = f"embeddings/{ENGINE}/{SAMPLE_AUDIO}"
DEFAULT_LANGUAGE = "en"  # written without a language segment
# Limits checked before anything is decompressed (a hostile or damaged file must fail fast and cheaply)
MAX_VOX_BYTES = 64 * 1024 * 1024  # the whole .vox file
MAX_ENTRY_BYTES = 32 * 1024 * 1024  # one entry, uncompressed (reference audio of ≤ 120 s is ≈ 11 MB as float32)
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed size of one entry (bombs are far above; WAV and JSON far below)
MAX_ENTRIES = 1000
EXT = "readthrough"  # our extensions namespace: lock fields a .vox has no place for

# Qwen3-TTS language names -> BCP-47 (clone prompts may record either)
_QWEN_LANGUAGES = {name: tag for tag, name in QWEN_LANGUAGES.items()}


@dataclass(frozen=True, eq=False)
class ClonePrompt:
    """Decoded clone-prompt.bin: reference codes [16, T] int32, speaker x-vector [D] float32 (or None)."""

    ref_codes: np.ndarray
    x_vector: np.ndarray | None
    ref_text: str
    language: str


# ---------------------------------------------------------------- manifest validation

_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
_GENDERS = ("male", "female", "nonbinary", "neutral")
_METHODS = ("designed", "synthesized", "cloned", "preset", "hybrid")
_CONSENTS = ("self", "granted", "unknown")
_VOICE_KEYS = {"name", "description", "language", "gender", "age_range", "tags"}
_PROSODY_KEYS = {"pitch_base", "pitch_range", "rate", "energy", "emotion_default"}
_REF_KEYS = {"file", "transcript", "language", "duration_seconds", "context", "model", "engine"}
_CHAR_KEYS = {"role", "emotional_range", "relationships", "source"}
_SOURCE_KEYS = {"work", "format", "file"}
_PROV_KEYS = {"method", "engine", "consent", "license", "notes", "source"}
_EMB_KEYS = {"model", "engine", "file", "format", "description", "language"}


def _is_str(v, min_len: int = 0) -> bool:
    return isinstance(v, str) and len(v) >= min_len


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_list(v, min_items: int = 0) -> bool:
    return isinstance(v, list) and len(v) >= min_items and all(_is_str(x, 1) for x in v)


def _extra(obj: dict, allowed: set, where: str) -> list[str]:
    return [f"{where}: unknown field {k!r}" for k in sorted(set(obj) - allowed)]


def _check_strings(obj: dict, keys, where: str) -> list[str]:
    return [f"{where}.{k} must be a string" for k in keys if k in obj and not _is_str(obj[k])]


def _validate_voice(v: dict) -> list[str]:
    """Optional voice fields (name and description are checked by validate_required)."""
    out = _extra(v, _VOICE_KEYS, "voice")
    out += _check_strings(v, ["language"], "voice")
    if "gender" in v and v["gender"] not in _GENDERS:
        out.append(f"voice.gender must be one of {', '.join(_GENDERS)}")
    if "age_range" in v:
        a = v["age_range"]
        if not (isinstance(a, list) and len(a) == 2 and all(_is_int(x) and x >= 0 for x in a)):
            out.append("voice.age_range must be [min, max] of two non-negative integers")
        elif a[0] >= a[1]:
            out.append("voice.age_range must have min < max")
    if "tags" in v and not _str_list(v["tags"]):
        out.append("voice.tags must be a list of non-empty strings")
    return out


def _validate_reference_audio(refs) -> list[str]:
    if not isinstance(refs, list):
        return ["reference_audio must be a list"]
    out = []
    for i, r in enumerate(refs):
        where = f"reference_audio[{i}]"
        if not isinstance(r, dict):
            out.append(f"{where} must be an object")
            continue
        out += _extra(r, _REF_KEYS, where)
        out += [f"{where}.{k} is required and must be a non-empty string" for k in ("file", "transcript")
                if not _is_str(r.get(k), 1)]
        out += _check_strings(r, ["language", "context", "model", "engine"], where)
        d = r.get("duration_seconds", 0)
        if isinstance(d, bool) or not isinstance(d, (int, float)) or d < 0:
            out.append(f"{where}.duration_seconds must be a number >= 0")
    return out


def _validate_character(c) -> list[str]:
    if not isinstance(c, dict):
        return ["character must be an object"]
    out = _extra(c, _CHAR_KEYS, "character") + _check_strings(c, ["role"], "character")
    if "emotional_range" in c and not _str_list(c["emotional_range"]):
        out.append("character.emotional_range must be a list of non-empty strings")
    rel = c.get("relationships", {})
    if not (isinstance(rel, dict) and all(_is_str(x) for x in rel.values())):
        out.append("character.relationships must map names to strings")
    if "source" in c:
        s = c["source"]
        if not isinstance(s, dict):
            out.append("character.source must be an object")
        else:
            out += _extra(s, _SOURCE_KEYS, "character.source") + _check_strings(s, _SOURCE_KEYS, "character.source")
    return out


def _validate_provenance(p) -> list[str]:
    if not isinstance(p, dict):
        return ["provenance must be an object"]
    out = _extra(p, _PROV_KEYS, "provenance") + _check_strings(p, ["engine", "license", "notes"], "provenance")
    if "method" in p and p["method"] not in _METHODS:
        out.append(f"provenance.method must be one of {', '.join(_METHODS)}")
    if "consent" in p and p["consent"] is not None and p["consent"] not in _CONSENTS:
        out.append("provenance.consent must be self, granted, unknown or null")
    if "source" in p and not _str_list(p["source"], 1):
        out.append("provenance.source must be a non-empty list of non-empty strings")
    if p.get("method") == "cloned":
        if "source" not in p:
            out.append("provenance.source is required when method is 'cloned'")
        if p.get("consent") not in ("self", "granted"):
            out.append("provenance.consent must be 'self' or 'granted' when method is 'cloned'")
    return out


def _validate_embeddings(e) -> list[str]:
    if not isinstance(e, dict):
        return ["embeddings must be an object"]
    out = []
    for key, entry in e.items():
        where = f"embeddings[{key!r}]"
        if not isinstance(entry, dict):
            out.append(f"{where} must be an object")
            continue
        out += _extra(entry, _EMB_KEYS, where)
        if not _is_str(entry.get("model"), 1):
            out.append(f"{where}.model is required and must be a non-empty string")
        f = entry.get("file")
        if not (_is_str(f, 1) and f.startswith("embeddings/")):
            out.append(f"{where}.file is required and must start with 'embeddings/'")
        out += _check_strings(entry, ["engine", "format", "description", "language"], where)
    return out


def validate_required(manifest: Any) -> list[str]:
    """Problems with the fields every .vox must have: vox_version, id, created, voice.name, voice.description."""
    if not isinstance(manifest, dict):
        return ["manifest must be a JSON object"]
    out = []
    if not (_is_str(manifest.get("vox_version")) and _SEMVER.match(manifest["vox_version"])):
        out.append("vox_version is required and must look like 0.4.0")
    if not (_is_str(manifest.get("id")) and _UUID4.match(manifest["id"])):
        out.append("id is required and must be a lowercase UUID v4")
    if not (_is_str(manifest.get("created")) and _DATE.match(manifest["created"])):
        out.append("created is required and must be YYYY-MM-DDTHH:MM:SSZ (no fractional seconds)")
    voice = manifest.get("voice")
    if not isinstance(voice, dict):
        out.append("voice is required and must be an object")
    else:
        if not _is_str(voice.get("name"), 1):
            out.append("voice.name is required and must be a non-empty string")
        if not _is_str(voice.get("description"), 10):
            out.append("voice.description is required and must be at least 10 characters")
    return out


def validate_manifest(manifest: Any) -> list[str]:
    """Problems with a .vox manifest against vox-format 0.4.0 (empty list = valid). Mirrors the published schema,
    plus the spec's rule that age_range min < max."""
    out = validate_required(manifest)
    if not isinstance(manifest, dict):
        return out
    if isinstance(manifest.get("voice"), dict):
        out += _validate_voice(manifest["voice"])
    if "prosody" in manifest:
        p = manifest["prosody"]
        out += (_extra(p, _PROSODY_KEYS, "prosody") + _check_strings(p, _PROSODY_KEYS, "prosody")
                if isinstance(p, dict) else ["prosody must be an object"])
    checks = {"reference_audio": _validate_reference_audio, "character": _validate_character,
              "provenance": _validate_provenance, "embeddings": _validate_embeddings}
    for key, check in checks.items():
        if key in manifest:
            out += check(manifest[key])
    if "extensions" in manifest and not isinstance(manifest["extensions"], dict):
        out.append("extensions must be an object")
    return out


# ---------------------------------------------------------------- clone-prompt.bin


_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8", "I16": "<i2", "U16": "<u2",
              "U32": "<u4", "U8": "u1", "I8": "i1"}


def _read_safetensors(blob: bytes, what: str) -> dict[str, np.ndarray]:
    """Parse safetensors bytes; handles BF16 (which numpy lacks) by widening to float32."""
    if len(blob) < 8:
        raise ValueError(f"{what} is too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8 or n > 64 * 1024:
        raise ValueError(f"{what} header is out of range")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{what} header is not an object")
    header.pop("__metadata__", None)
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise ValueError(f"{what}: tensor {name!r} is not described by an object")
        start, end = info.get("data_offsets") or (None, None)
        shape = info.get("shape")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(data)):
            raise ValueError(f"{what}: tensor {name!r} has data offsets outside the file")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ValueError(f"{what}: tensor {name!r} has an invalid shape")
        raw = data[start:end]
        if info.get("dtype") == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info.get("dtype") in _ST_DTYPES:
            a = np.frombuffer(raw, dtype=_ST_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{what}: unsupported dtype {info.get('dtype')!r}")
        if int(np.prod(shape, dtype=np.int64)) != a.size:
            raise ValueError(f"{what}: tensor {name!r} shape {shape} does not match its {a.size} values")
        out[name] = a.reshape(shape).copy()
    return out


def encode_clone_prompt(ref_codes: np.ndarray, x_vector: np.ndarray | None, ref_text: str, language: str) -> bytes:
    """clone-prompt.bin bytes for reference codes [16, T], an optional x-vector [D], and the reference text."""
    from safetensors.numpy import save

    codes = save({"ref_codes": np.ascontiguousarray(ref_codes, dtype=np.int32)[None]})
    speaker = b"" if x_vector is None else save(
        {"speaker_embedding": np.ascontiguousarray(x_vector, dtype=np.float32).reshape(1, -1)})
    meta = {"hasEmbedding": x_vector is not None, "language": language, "refCodesSize": len(codes),
            "refText": ref_text, "speakerDataSize": len(speaker)}
    blob = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return struct.pack("<I", len(blob)) + blob + codes + speaker


def decode_clone_prompt(data: bytes) -> ClonePrompt:
    """Parse clone-prompt.bin bytes; raises ValueError saying what is malformed."""
    if len(data) < 4:
        raise ValueError("clone prompt is too short")
    (n,) = struct.unpack("<I", data[:4])
    if n > len(data) - 4:
        raise ValueError("clone prompt metadata length is out of range")
    meta = json.loads(data[4 : 4 + n].decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("clone prompt metadata is not a JSON object")
    for field in ("refCodesSize", "speakerDataSize"):
        if field in meta and not (isinstance(meta[field], int) and not isinstance(meta[field], bool)):
            raise ValueError(f"clone prompt {field} is not an integer")
    if not isinstance(meta.get("refText", ""), str) or not isinstance(meta.get("language", ""), str):
        raise ValueError("clone prompt refText/language are not strings")
    codes_size, spk_size = int(meta.get("refCodesSize", -1)), int(meta.get("speakerDataSize", 0))
    has_emb = bool(meta.get("hasEmbedding", spk_size > 0))
    pos = 4 + n
    if codes_size <= 0 or pos + codes_size + (spk_size if has_emb else 0) > len(data):
        raise ValueError("clone prompt sizes do not match its length")
    codes = _read_safetensors(data[pos : pos + codes_size], "ref_codes").get("ref_codes")
    if codes is None:
        raise ValueError("clone prompt holds no ref_codes")
    codes = codes.reshape(codes.shape[-2:]) if codes.ndim == 3 and codes.shape[0] == 1 else codes
    if codes.ndim != 2 or codes.shape[0] != N_CODEBOOKS:
        raise ValueError(f"ref_codes has shape {list(codes.shape)}, expected [1, {N_CODEBOOKS}, T]")
    if codes.shape[1] > MAX_REF_FRAMES or codes.shape[1] == 0:
        raise ValueError(f"ref_codes has {codes.shape[1]} frames (1 to {MAX_REF_FRAMES} allowed)")
    if not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= CODEC_VOCAB:
        raise ValueError(f"ref_codes are not integers in the codec vocabulary [0, {CODEC_VOCAB})")
    x_vector = None
    if has_emb:
        spk = _read_safetensors(data[pos + codes_size : pos + codes_size + spk_size], "speaker_embedding")
        if "speaker_embedding" not in spk:
            raise ValueError("clone prompt holds no speaker_embedding")
        x_vector = spk["speaker_embedding"].astype(np.float32).reshape(-1)
        if x_vector.size > MAX_X_VECTOR or not np.all(np.isfinite(x_vector)):
            raise ValueError(f"speaker_embedding has {x_vector.size} values or non-finite ones")
    return ClonePrompt(codes.astype(np.int32), x_vector, str(meta.get("refText", "")), str(meta.get("language", "")))


# ---------------------------------------------------------------- sizes, languages, keys


def model_size(model_id: str, size: str | None = None) -> str:
    """"0.6b" or "1.7b": a local model folder's config `tts_model_size` ("0b6"), else "0.6B"/"1.7B" in the id,
    else `size`."""
    cfg = Path(model_id) / "config.json"
    if cfg.is_file():
        try:
            raw = str(json.loads(cfg.read_text()).get("tts_model_size", ""))
        except (OSError, ValueError, AttributeError):
            raw = ""
        m = re.fullmatch(r"(\d+)b(\d+)", raw.lower())
        if m:
            return f"{m.group(1)}.{m.group(2)}b"
    m = re.search(r"(?<![\d.])(\d+\.\d+)b(?![a-z0-9])", model_id.lower())
    if m:
        return f"{m.group(1)}b"
    if size:
        return size.lower() if size.lower().endswith("b") else f"{size.lower()}b"
    raise VoiceLockError(f"Cannot tell the model size (0.6B or 1.7B) of {model_id!r}; pass size='0.6b' or '1.7b'.")


def _lang_segment(language: str | None) -> str | None:
    """None for the default language (written without a segment), else the BCP-47 tag."""
    if not language or language.split("-")[0].lower() == DEFAULT_LANGUAGE:
        return None
    return language


def _to_bcp47(language: str) -> str:
    return _QWEN_LANGUAGES.get(language.lower(), language)


def embedding_names(size: str, language: str | None) -> tuple[str, str, str]:
    """(key stem, clone-prompt path, sample-audio path) for a model size and language."""
    seg = _lang_segment(language)
    stem = f"{ENGINE}-{size}" + (f"-{seg}" if seg else "")
    folder = f"embeddings/{ENGINE}/{size}" + (f"/{seg}" if seg else "")
    return stem, f"{folder}/{CLONE_PROMPT}", f"{folder}/{SAMPLE_AUDIO}"


# ---------------------------------------------------------------- export


def _description(lock: VoiceLock) -> str:
    desc = " ".join(lock.description.split())
    if len(desc) >= 10:
        return desc
    return f"{lock.name} voice" + (f": {desc}" if desc else "") + " (readthrough Qwen3-TTS clone prompt)"


def _wav_pcm16(lock: VoiceLock) -> bytes:
    import soundfile as sf

    audio = resample(Audio(lock.ref_audio, lock.sample_rate), SAMPLE_RATE)
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio.samples, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def variant_entry_names(size: str, language: str | None, delivery: str) -> tuple[str, str, str]:
    """(key stem, clone-prompt path, sample-audio path) of a delivery variant (pipeline.variants).

    Keys start with "variant-" and files are `…/variants/<delivery>.clone-prompt.bin`, so a reader's lookup of the
    voice's own clone prompt (exact key, or a file named clone-prompt.bin, keys in sorted order) never lands on a
    variant."""
    seg = _lang_segment(language)
    stem = f"variant-{delivery}-{ENGINE}-{size}" + (f"-{seg}" if seg else "")
    folder = f"embeddings/{ENGINE}/{size}" + (f"/{seg}" if seg else "") + "/variants"
    return stem, f"{folder}/{delivery}.{CLONE_PROMPT}", f"{folder}/{delivery}.{SAMPLE_AUDIO}"


def _variant_delivery(lock: VoiceLock, variant: VoiceLock) -> str:
    delivery = variant.params.get("delivery")
    if not isinstance(delivery, str) or not delivery or variant.params.get("neutral") != lock.digest():
        raise VoiceLockError(f"Voice {variant.name!r} is not a delivery variant of {lock.name!r} (its params name no "
                             "delivery, or another neutral voice); export only the variants cast with this lock.")
    if variant.kind != "clone" or variant.ref_codes is None or variant.x_vector is None:
        raise VoiceLockError(f"Variant {variant.name!r} is a {variant.kind} lock; only clone locks export to .vox.")
    return delivery


def _variant_entries(lock: VoiceLock, size: str, variants) -> tuple[dict, dict]:
    """(manifest embeddings entries, extensions.readthrough.variants) of `variants`."""
    entries: dict[str, dict] = {}
    ext: dict[str, dict] = {}
    for v in variants:
        delivery = _variant_delivery(lock, v)
        stem, prompt_file, sample_file = variant_entry_names(size, v.language, delivery)
        seg = _lang_segment(v.language)
        common = {"model": v.model_id, "engine": ENGINE, **({"language": seg} if seg else {})}
        entries[f"{stem}-clone-prompt"] = {
            **common, "file": prompt_file, "format": "bin",
            "description": f"Delivery variant '{delivery}' of this voice (readthrough): clone prompt for the "
                           f"{size.upper()} Base model"}
        entries[f"{stem}-sample-audio"] = {**common, "file": sample_file, "format": "wav",
                                           "description": f"Reference audio of the '{delivery}' variant"}
        ext[delivery] = {"clone_prompt": f"{stem}-clone-prompt", "sample_audio": f"{stem}-sample-audio",
                         "digest": v.digest(), "seed": v.seed, "params": v.params, "description": v.description,
                         "created": v.created}
    return entries, ext


def build_manifest(lock: VoiceLock, size: str, *, gender=None, age_range=None, tags=(), character=None,
                   variants=()) -> dict:
    """The manifest.json dict for a clone lock and its delivery variants (validated by the caller)."""
    stem, prompt_file, sample_file = embedding_names(size, lock.language)
    seg = _lang_segment(lock.language)
    voice: dict[str, Any] = {"name": lock.name, "description": _description(lock), "language": lock.language}
    if gender:
        voice["gender"] = gender
    if age_range:
        voice["age_range"] = [int(x) for x in age_range]
    if tags:
        voice["tags"] = [str(t) for t in tags]
    common = {"model": lock.model_id, "engine": ENGINE, **({"language": seg} if seg else {})}
    manifest: dict[str, Any] = {
        "vox_version": VOX_VERSION,
        "id": str(uuid.uuid4()),
        "created": lock.created if _DATE.match(lock.created or "") else now_iso(),
        "voice": voice,
        "embeddings": {
            f"{stem}-clone-prompt": {**common, "file": prompt_file, "format": "bin",
                                     "description": f"Clone prompt for the {size.upper()} Base model"},
            f"{stem}-sample-audio": {**common, "file": sample_file, "format": "wav",
                                     "description": f"Reference audio for the {size.upper()} clone prompt"},
        },
        "provenance": {"method": "designed", "engine": "qwen3-tts-voicedesign", "consent": None,
                       "notes": "Designed voice (no real person), locked by readthrough."},
        "extensions": {
            EXT: {"digest": lock.digest(), "seed": lock.seed, "params": lock.params, "engine": lock.engine,
                  "kind": lock.kind, "created": lock.created},
        },
    }
    if variants:
        entries, ext = _variant_entries(lock, size, variants)
        manifest["embeddings"].update(entries)
        manifest["extensions"][EXT]["variants"] = ext
    if lock.description:
        manifest["extensions"][ENGINE] = {"design_instruct": lock.description}
    if character:
        manifest["character"] = character
    return manifest


def export_vox(lock: VoiceLock, path: str | Path, *, gender: str | None = None, age_range=None, tags=(),
               character: dict | None = None, size: str | None = None, variants=()) -> Path:
    """Write `lock` as a .vox (vox-format 0.4.0) atomically: manifest.json first, clone prompt, sample audio, then
    each delivery variant's clone prompt and sample audio (`variant_entry_names`; listed in
    `extensions.readthrough.variants`).

    Only clone locks export (raises VoiceLockError otherwise). `size` ("0.6b"/"1.7b") is needed only when neither
    the model id nor a local model folder's config says it. Entries are stored uncompressed, like the Swift writer.
    """
    path = Path(path)
    if lock.kind != "clone" or lock.ref_codes is None or lock.x_vector is None or lock.ref_audio is None:
        raise VoiceLockError(
            f"Voice {lock.name!r} is a {lock.kind} lock; only clone locks export to .vox (a .vox carries a Qwen3-TTS "
            "clone prompt). Cast the character with a designed voice first, then export its lock.")
    sz = model_size(lock.model_id, size)
    manifest = build_manifest(lock, sz, gender=gender, age_range=age_range, tags=tags, character=character,
                              variants=variants)
    problems = validate_manifest(manifest)
    if problems:
        raise VoiceLockError(f"Cannot export voice {lock.name!r} to {path}: " + "; ".join(problems) + ".")
    _, prompt_file, sample_file = embedding_names(sz, lock.language)
    prompt = encode_clone_prompt(lock.ref_codes, lock.x_vector, lock.ref_text, lock.language)
    stamp = max(tuple(int(x) for x in re.findall(r"\d+", manifest["created"])[:6]), (1980, 1, 1, 0, 0, 0))
    files = [("manifest.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
              + b"\n"), (prompt_file, prompt), (sample_file, _wav_pcm16(lock))]
    for v in variants:
        _, v_prompt, v_sample = variant_entry_names(sz, v.language, v.params["delivery"])
        files += [(v_prompt, encode_clone_prompt(v.ref_codes, v.x_vector, v.ref_text, v.language)),
                  (v_sample, _wav_pcm16(v))]
    with atomic_path(path, suffix=".vox") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files:
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data)
    return path


# ---------------------------------------------------------------- read / import


@dataclass(frozen=True)
class VoxArchive:
    """A .vox opened for reading: its manifest, entry names (data is read on demand) and the manifest's problems
    against the full schema (reading tolerates them; only the required fields must be right)."""

    path: Path
    manifest: dict
    names: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def read(self, name: str, limit: int = MAX_ENTRY_BYTES) -> bytes:
        with zipfile.ZipFile(self.path) as zf:
            return _read_entry(zf, self.path, name, limit)


def _read_entry(zf: zipfile.ZipFile, path: Path, name: str, limit: int) -> bytes:
    """One entry's bytes, refused before decompression when its declared size or ratio is too large, and cut off
    if it inflates beyond what it declared (headers can lie)."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise VoiceLockError(f"{path}: entry {name[:80]} is {info.file_size} bytes uncompressed, more than {limit}; "
                             "this is not a voice file readthrough reads.")
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1024 * 1024:
        raise VoiceLockError(f"{path}: entry {name[:80]} expands {info.file_size // info.compress_size}× "
                             "(a ZIP bomb?); refused.")
    with zf.open(info) as f:
        data = f.read(min(limit, info.file_size) + 1)
    if len(data) > info.file_size or len(data) > limit:
        raise VoiceLockError(f"{path}: entry {name[:80]} is larger than its header says; refused.")
    return data


def _check_names(path: Path, names) -> None:
    """Refuse archives with too many entries or unsafe entry names (absolute, `..`, backslashes, control chars)."""
    if len(names) > MAX_ENTRIES:
        raise VoiceLockError(f"{path}: {len(names)} entries, more than a .vox holds ({MAX_ENTRIES}); refused.")
    for n in names:
        parts = PurePosixPath(n).parts
        if (n.startswith(("/", "\\")) or "\\" in n or ".." in parts or re.match(r"^[A-Za-z]:", n)
                or any(ord(c) < 32 for c in n) or len(n) > 512):
            raise VoiceLockError(f"{path}: unsafe entry name {n[:80]!r} (absolute, '..' or control characters); "
                                 "this is not a voice file readthrough reads.")


def read_vox(path: str | Path) -> VoxArchive:
    """Open a .vox (entries stored or DEFLATE): a ZIP whose manifest.json has the required fields.

    Other schema problems are kept in `.problems` rather than refused, so a voice from a slightly-off writer still
    imports. Raises VoiceLockError naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise VoiceLockError(f"{path}: file not found; check the path.")
    if path.stat().st_size > MAX_VOX_BYTES:
        raise VoiceLockError(f"{path}: {path.stat().st_size} bytes, more than a .vox voice file can be "
                             f"({MAX_VOX_BYTES} bytes); refused.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = tuple(zf.namelist())
            _check_names(path, names)
            links = [i.filename for i in zf.infolist() if (i.external_attr >> 16) & 0o170000 == 0o120000]
            if links:
                raise VoiceLockError(f"{path}: entry {links[0][:80]!r} is a symbolic link; refused.")
            if "manifest.json" not in names:
                raise VoiceLockError(f"{path}: not a .vox file (no manifest.json at the archive root).")
            manifest = json.loads(_read_entry(zf, path, "manifest.json", MAX_MANIFEST_BYTES).decode("utf-8"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError, EOFError) as e:
        raise VoiceLockError(f"{path}: not a .vox file (not a readable ZIP: {e}).") from None
    except (ValueError, RecursionError) as e:
        raise VoiceLockError(f"{path}: manifest.json is not valid UTF-8 JSON ({type(e).__name__}: "
                             f"{str(e)[:200]}).") from None
    problems = validate_required(manifest)
    if problems:
        raise VoiceLockError(f"{path}: invalid manifest.json: " + "; ".join(problems)
                             + ". Re-export it with a vox-format 0.4.0 writer.")
    return VoxArchive(path, manifest, names, tuple(validate_manifest(manifest)))


def _language_levels(language: str) -> list:
    """Predicates on an entry's language, best first: exact tag → base subtag → no language (the default)."""
    lang = language.lower()
    base = lang.split("-")[0]
    return [lambda e: str(e.get("language") or "").lower() == lang,
            lambda e: str(e.get("language") or "").lower() == base, lambda e: not e.get("language")]


def _queries(model_id: str | None) -> list[str]:
    """What to look for: the model id itself, then its key stem (qwen3-tts-1.7b), then the bare size."""
    if not model_id:
        return []
    out = [model_id]
    try:
        size = model_size(model_id)
        out += [f"{ENGINE}-{size}", size]
    except VoiceLockError:
        pass
    return out


def find_clone_prompt(manifest: dict, names, *, model_id: str | None = None,
                      language: str | None = None) -> tuple[str, dict]:
    """(archive path, manifest entry or {}) of the clone prompt to import, mirroring the reference reader.

    Query match: exact key → key case-insensitive → model contains query → key contains query, where the queries are
    `model_id`, then its key stem (`qwen3-tts-1.7b`), then its size (`1.7b`). Language: exact tag → base subtag →
    entry without language (the default, English). When a language is asked for it is the outer loop, so "es" finds
    the Spanish prompt even when a query matches the default entry's key exactly; without one, the first matching
    query step wins (an exact key is honoured) and its default-language entry is preferred. Then the legacy path.
    Only entries whose file is a clone-prompt.bin present in the archive count, so a sample WAV is never returned in
    its place. Raises VoiceLockError when nothing matches."""
    entries = []
    embeddings = manifest.get("embeddings")
    for k, e in (embeddings if isinstance(embeddings, dict) else {}).items():
        if not isinstance(e, dict) or PurePosixPath(str(e.get("file", ""))).name != CLONE_PROMPT:
            continue
        # older writers left off the "embeddings/" prefix; find the entry either way
        file = next((f for f in (e["file"], f"embeddings/{e['file']}") if f in names), None)
        if file:
            entries.append((k, {**e, "file": file}))
    steps = [lambda k, e, q: k == q, lambda k, e, q: k.lower() == q.lower(),
             lambda k, e, q: q.lower() in str(e.get("model", "")).lower(), lambda k, e, q: q.lower() in k.lower()]
    queries = _queries(model_id)
    if not language:  # the first query step that matches wins; the default-language entry among its matches
        groups = ([e for k, e in entries if step(k, e, q)] for q in queries for step in steps)
        for hit in (groups if queries else [[e for _, e in entries]]):
            if hit:
                e = next((e for e in hit if not e.get("language")), hit[0])
                return e["file"], e
    for level in _language_levels(language) if language else []:
        for q in queries or [""]:  # "" matches every key
            for step in steps:
                hit = [e for k, e in entries if step(k, e, q) and level(e)]
                if hit:
                    return hit[0]["file"], hit[0]
    if LEGACY_CLONE_PROMPT in names:
        return LEGACY_CLONE_PROMPT, {}
    if not entries:
        raise VoiceLockError("this .vox holds no Qwen3-TTS clone prompt (only a description); cast the voice from "
                             "its description instead (`readthrough voices inspect FILE` shows it)")
    wanted = f" for model {model_id!r}" if model_id else ""
    wanted += f" in language {language!r}" if language else ""
    have = ", ".join(k for k, _ in entries)
    raise VoiceLockError(f"no Qwen3-TTS clone prompt{wanted} (it has: {have}); import again with one of those "
                         "models/languages")


def _sample_audio(vox: VoxArchive, prompt_file: str, ref_text: str) -> Audio | None:
    """The reference audio for a clone prompt: the sample-audio.wav beside it, the legacy sample, or a
    reference_audio clip whose transcript is the clone prompt's reference text."""
    import soundfile as sf

    candidates = [str(PurePosixPath(prompt_file).with_name(SAMPLE_AUDIO)), LEGACY_SAMPLE_AUDIO]
    refs = vox.manifest.get("reference_audio")
    candidates += [r.get("file") for r in (refs if isinstance(refs, list) else [])
                   if isinstance(r, dict) and r.get("transcript") == ref_text]
    for name in candidates:
        if name in vox.names:
            try:
                data, sr = sf.read(io.BytesIO(vox.read(name)), dtype="float32", always_2d=True)
            except (RuntimeError, zipfile.BadZipFile) as e:  # soundfile's errors are RuntimeErrors
                raise VoiceLockError(f"{vox.path}: {name} is not readable audio ({e}); re-export the voice.") from None
            return Audio(data.mean(axis=1), int(sr))
    return None


def import_vox(path: str | Path, *, model_id: str | None = None, language: str | None = None) -> VoiceLock:
    """A clone VoiceLock from a .vox's Qwen3-TTS clone prompt and its sample audio (see `find_clone_prompt`).

    The lock's model id is the entry's `model`; its language is the entry's, else the voice's. Fields the format has
    no place for (seed, params) come back from our `extensions.readthrough` when the file was written by readthrough.
    """
    vox = read_vox(path)
    try:
        return _import(vox, model_id, language)
    except VoiceLockError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, RecursionError, OverflowError, struct.error,
            zipfile.BadZipFile, EOFError, OSError) as e:  # a malformed field anywhere: name the file, not a traceback
        raise VoiceLockError(f"{vox.path}: malformed .vox ({type(e).__name__}: {str(e)[:200]}); re-export the "
                             "voice with a vox-format 0.4.0 writer.") from None


def _import(vox: VoxArchive, model_id: str | None, language: str | None) -> VoiceLock:
    try:
        prompt_file, entry = find_clone_prompt(vox.manifest, vox.names, model_id=model_id, language=language)
    except VoiceLockError as e:
        raise VoiceLockError(f"{vox.path} (voice {vox.manifest['voice']['name']!r}): {e}.") from None
    try:
        prompt = decode_clone_prompt(vox.read(prompt_file))
    except (ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as e:
        raise VoiceLockError(f"{vox.path}: {prompt_file} is corrupt ({e}); re-export the voice.") from None
    voice = vox.manifest["voice"]
    if prompt.x_vector is None:
        raise VoiceLockError(f"{vox.path}: {prompt_file} has no speaker embedding (x-vector); readthrough needs one. "
                             "Re-export the voice from a Base model with a speaker encoder.")
    audio = _sample_audio(vox, prompt_file, prompt.ref_text)
    if audio is None:
        raise VoiceLockError(f"{vox.path}: no reference audio beside {prompt_file}; readthrough needs it to render. "
                             "Re-export the voice with its sample audio.")
    ext = (vox.manifest.get("extensions") or {}).get(EXT) or {}
    lang = entry.get("language") or voice.get("language") or _to_bcp47(prompt.language) or DEFAULT_LANGUAGE
    description = ((vox.manifest.get("extensions") or {}).get(ENGINE) or {}).get("design_instruct")
    lock = VoiceLock(
        name=voice["name"], kind="clone", engine=str(ext.get("engine", "qwen3")),
        model_id=str(entry.get("model") or model_id or ""), language=lang, ref_text=prompt.ref_text,
        ref_audio=audio.samples, ref_codes=prompt.ref_codes, x_vector=prompt.x_vector,
        description=description if isinstance(description, str) and description else voice["description"],
        seed=ext.get("seed") if isinstance(ext.get("seed"), int) else None,
        created=vox.manifest["created"], params=ext.get("params") if isinstance(ext.get("params"), dict) else {},
        sample_rate=audio.sample_rate)
    if not lock.model_id:
        raise VoiceLockError(f"{vox.path}: the legacy clone prompt {prompt_file} does not say which Base model made "
                             "it; import again naming the model (model_id=... / --model ID).")
    check_lock(lock, f"{vox.path}:{prompt_file}", "re-export the voice as .vox")
    return lock


def import_vox_variants(path: str | Path, neutral: VoiceLock) -> list[VoiceLock]:
    """The delivery variants a readthrough-written .vox carries (`extensions.readthrough.variants`), as clone locks
    of `neutral`'s family (`neutral` = the lock `import_vox` made from the same file: their `params["neutral"]`
    names its digest). A .vox without variants gives []."""
    vox = read_vox(path)
    ext = ((vox.manifest.get("extensions") or {}).get(EXT) or {}).get("variants") or {}
    embeddings = vox.manifest.get("embeddings") or {}
    out = []
    for delivery, info in sorted(ext.items()) if isinstance(ext, dict) else []:
        entry = embeddings.get(info.get("clone_prompt")) if isinstance(info, dict) else None
        sample = embeddings.get(info.get("sample_audio")) if isinstance(info, dict) else None
        if not entry or not sample or entry.get("file") not in vox.names or sample.get("file") not in vox.names:
            raise VoiceLockError(f"{vox.path}: variant {delivery!r} names embeddings that are not in the archive; "
                                 "re-export the voice with its variants.")
        import soundfile as sf

        try:
            prompt = decode_clone_prompt(vox.read(entry["file"]))
            data, sr = sf.read(io.BytesIO(vox.read(sample["file"])), dtype="float32", always_2d=True)
        except (ValueError, KeyError, TypeError, RuntimeError, struct.error, zipfile.BadZipFile) as e:
            raise VoiceLockError(f"{vox.path}: variant {delivery!r} is corrupt ({e}); re-export the voice.") from None
        params = {**(info.get("params") if isinstance(info.get("params"), dict) else {}),
                  "family": neutral.name, "delivery": delivery, "neutral": neutral.digest()}
        lock = VoiceLock(
            name=f"{neutral.name} ({delivery})", kind="clone", engine=neutral.engine,
            model_id=str(entry.get("model") or neutral.model_id), language=neutral.language,
            ref_text=prompt.ref_text, ref_audio=data.mean(axis=1), ref_codes=prompt.ref_codes,
            x_vector=prompt.x_vector, description=str(info.get("description") or ""),
            seed=info.get("seed") if isinstance(info.get("seed"), int) else None,
            created=str(info.get("created") or vox.manifest["created"]), params=params, sample_rate=int(sr))
        check_lock(lock, f"{vox.path}:{entry['file']}", "re-export the voice as .vox")
        out.append(lock)
    return out
