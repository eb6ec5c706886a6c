"""VoiceLock: everything needed to speak in one locked voice, saved as one safetensors file (no pickle).

Kinds:
- "clone":   a Qwen3-TTS Base clone prompt — reference audio + exact reference text, reference codes [16, T]
             and the speaker x-vector, all made by the Base model named in `model_id`.
- "preset":  a Qwen3-TTS CustomVoice preset speaker (`params["speaker"]`, optional `params["instruct"]`).
- "preview": espeak-ng voice parameters in `params` (and a sample in `ref_audio`).
- "instant": the instant engine's synthetic voice parameters in `params`.

Files: `save_lock` / `load_lock` (validated, digest-checked), `lock_path` (versioned names, so relocking never
overwrites an older lock), `list_locks` (header-only listing). `prepare_reference` cleans a clone reference.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .audio import Audio
from .engines import lock_kinds
from .errors import VoiceLockError
from .files import atomic_path, slug

LOCK_FORMAT_VERSION = 1

KNOWN_FORMAT_VERSIONS = (1,)
N_CODEBOOKS = 16
LOCK_SUFFIX = ".lock.safetensors"
META_KEY = "readthrough_lock"  # safetensors metadata key holding the lock's JSON metadata
DIGEST_KEY = "digest"
RELOCK_FIX = "re-lock the voice with `readthrough cast SCRIPT --force`"
# array name -> (dtype, ndim) a lock file must use
ARRAY_SPECS = {"ref_audio": (np.float32, 1), "ref_codes": (np.int32, 2), "x_vector": (np.float32, 1)}
# Range limits of what a lock may hold (a hostile or damaged file must not make loading or rendering expensive)
CODEC_VOCAB = 2048  # Qwen3-TTS 12 Hz codec: codes are in [0, 2048)
MAX_REF_SECONDS = 120.0  # reference audio (clone prompts use a few seconds)
MAX_REF_FRAMES = int(MAX_REF_SECONDS * 12.5)  # reference codes at 12.5 frames/s
MAX_X_VECTOR = 8192
SAMPLE_RATES = (8_000, 192_000)
MAX_LOCK_BYTES = 64 * 1024 * 1024  # a lock file larger than this is refused before it is read
MAX_NAME_CHARS = 20_000  # as long as a script line may be (fountain.MAX_LINE_CHARS): a cue can be a name
MAX_TEXT_CHARS = 20_000  # reference text, description


class LockMetadata(BaseModel):
    """The JSON metadata of a lock file (safetensors metadata key `readthrough_lock`): written by `save_lock`,
    read back by `load_lock`. Strict types: a string where a number belongs is an error, not a conversion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    format_version: int
    name: str
    kind: str
    engine: str
    model_id: str
    language: str
    ref_text: str
    description: str
    seed: int | None
    created: str
    params: dict[str, Any]
    sample_rate: int


@dataclass(frozen=True, eq=False)
class VoiceLock:
    name: str
    kind: str  # one of pipeline.engines.lock_kinds(): clone | preset | preview | instant
    engine: str
    model_id: str
    language: str = "en"
    ref_text: str = ""
    ref_audio: np.ndarray | None = None  # float32 mono at `sample_rate`
    ref_codes: np.ndarray | None = None  # int32 [16, T]
    x_vector: np.ndarray | None = None  # float32 [D]
    description: str = ""
    seed: int | None = None
    created: str = ""  # ISO 8601, UTC, "Z"
    params: dict[str, Any] = field(default_factory=dict)
    sample_rate: int = 24_000

    def __post_init__(self):
        # Arrays are stored with fixed dtypes; coerce here so the digest of a fresh lock equals that of its saved copy.
        for name, (dtype, _) in ARRAY_SPECS.items():
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, np.ascontiguousarray(v, dtype=dtype))

    def metadata(self) -> dict[str, Any]:
        """JSON-able fields (everything but the arrays), as `LockMetadata`."""
        fields = {k: getattr(self, k) for k in LockMetadata.model_fields if k != "format_version"}
        return LockMetadata.model_construct(format_version=LOCK_FORMAT_VERSION, **fields).model_dump()

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for k in ("ref_audio", "ref_codes", "x_vector"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out

    def digest(self) -> str:
        """Content digest of what determines the voice: arrays and metadata except name and creation time."""
        meta = {k: v for k, v in self.metadata().items() if k not in ("created", "name")}
        h = hashlib.sha256(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
        for k, v in sorted(self.arrays().items()):
            a = np.ascontiguousarray(v)
            h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def prepare_reference(audio: Audio, silence_s: float = 0.5, threshold_db: float = -45.0,
                      frame_s: float = 0.010, margin_s: float = 0.020) -> Audio:
    """Reference hygiene for a clone prompt: trim leading/trailing silence, then append `silence_s` of silence.

    A frame (10 ms) is silent when its RMS is more than `threshold_db` below the clip's peak sample. `margin_s` of the
    trimmed audio is kept on each side so soft onsets and decays survive. The appended tail stops the Base model
    from running the reference's last phoneme into the generated speech (mlx-audio #921).
    """
    x = audio.samples
    sr = audio.sample_rate
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 0.0 or not np.isfinite(peak):
        raise VoiceLockError("Reference audio is silent or not finite; choose another audition or re-record it.")
    hop = max(1, int(round(frame_s * sr)))
    n = -(-x.size // hop)
    frames = np.zeros(n * hop, dtype=np.float64)
    frames[: x.size] = x
    rms = np.sqrt(np.mean(frames.reshape(n, hop) ** 2, axis=1))
    loud = np.flatnonzero(rms >= peak * 10.0 ** (threshold_db / 20.0))
    margin = int(round(margin_s * sr))
    start = max(0, loud[0] * hop - margin)
    end = min(x.size, (loud[-1] + 1) * hop + margin)
    tail = np.zeros(int(round(silence_s * sr)), dtype=np.float32)
    return Audio(np.concatenate([x[start:end], tail]), sr)


def lock_path(root: str | Path, name: str, digest: str) -> Path:
    """`<root>/<slug>/<slug>-<digest[:12]>.lock.safetensors`: a new voice gets a new file; old locks are kept."""
    s = slug(name)
    return Path(root) / s / f"{s}-{digest[:12]}{LOCK_SUFFIX}"


# ---------------------------------------------------------------- validation


def _err(path, name: str | None, problem: str, fix: str = RELOCK_FIX) -> VoiceLockError:
    voice = f" (voice {name!r})" if name else ""
    return VoiceLockError(f"Voice lock {path}{voice}: {problem}; {fix}.")


def _check_arrays(arrays: dict[str, np.ndarray], kind: str, ref_text: str, path, name, fix: str = RELOCK_FIX) -> None:
    """Names, dtypes and shapes of a lock's arrays; a clone lock needs all three and a reference text."""
    unknown = sorted(set(arrays) - set(ARRAY_SPECS))
    if unknown:
        raise _err(path, name, f"unexpected arrays {unknown} (a lock holds only {sorted(ARRAY_SPECS)})", fix)
    for key, a in arrays.items():
        dtype, ndim = ARRAY_SPECS[key]
        if a.dtype != dtype or a.ndim != ndim:
            raise _err(path, name, f"array {key!r} is {a.dtype} with shape {list(a.shape)}, "
                                   f"expected {np.dtype(dtype).name} with {ndim} dimension(s)", fix)
        if a.size == 0:
            raise _err(path, name, f"array {key!r} is empty", fix)
    codes = arrays.get("ref_codes")
    if codes is not None and codes.shape[0] != N_CODEBOOKS:
        raise _err(path, name, f"ref_codes has shape {list(codes.shape)}, expected [{N_CODEBOOKS}, T]", fix)
    if codes is not None and codes.shape[1] > MAX_REF_FRAMES:
        raise _err(path, name, f"ref_codes has {codes.shape[1]} frames, more than {MAX_REF_FRAMES} "
                               f"({MAX_REF_SECONDS:.0f} s)", fix)
    if codes is not None and (codes.min() < 0 or codes.max() >= CODEC_VOCAB):
        raise _err(path, name, f"ref_codes hold values outside the codec vocabulary [0, {CODEC_VOCAB})", fix)
    x_vector = arrays.get("x_vector")
    if x_vector is not None and x_vector.size > MAX_X_VECTOR:
        raise _err(path, name, f"x_vector has {x_vector.size} values, more than {MAX_X_VECTOR}", fix)
    if kind == "clone":
        missing = sorted(set(ARRAY_SPECS) - set(arrays))
        if missing:
            raise _err(path, name, f"clone lock is missing arrays {missing}", fix)
        if not ref_text.strip():
            raise _err(path, name, "clone lock has an empty reference text", fix)
    for key in ("ref_audio", "x_vector"):
        if key in arrays and not np.all(np.isfinite(arrays[key])):
            raise _err(path, name, f"array {key!r} holds NaN or infinite values", fix)


def check_lock(lock: VoiceLock, path, fix: str = RELOCK_FIX) -> None:
    """Raise VoiceLockError (naming `path`) unless `lock` is complete and well-formed for its kind."""
    if not lock.name:
        raise _err(path, None, "the voice has no name", "give the lock a name")
    if lock.kind not in lock_kinds():
        raise _err(path, lock.name, f"unknown kind {lock.kind!r} (known: {', '.join(lock_kinds())})", fix)
    if lock.kind == "preset" and not lock.params.get("speaker"):
        raise _err(path, lock.name, "preset lock has no params['speaker']", fix)
    _check_bounds(lock.name, lock.sample_rate, lock.ref_text, lock.description, path, fix)
    ref = lock.ref_audio
    if ref is not None and ref.size > MAX_REF_SECONDS * lock.sample_rate:
        raise _err(path, lock.name, f"reference audio is {ref.size / lock.sample_rate:.0f} s, longer than "
                                    f"{MAX_REF_SECONDS:.0f} s", fix)
    _check_arrays(lock.arrays(), lock.kind, lock.ref_text, path, lock.name, fix)


def _check_bounds(name: str, sample_rate: int, ref_text: str, description: str, path, fix: str = RELOCK_FIX) -> None:
    """Lengths and ranges of a lock's scalar fields."""
    shown = name[:40] + "…" if len(name) > 40 else name
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise _err(path, shown, f"the voice name is longer than {MAX_NAME_CHARS} characters or holds control "
                                "characters", fix)
    if not SAMPLE_RATES[0] <= sample_rate <= SAMPLE_RATES[1]:
        raise _err(path, shown, f"sample_rate {sample_rate} is outside {SAMPLE_RATES[0]}-{SAMPLE_RATES[1]} Hz", fix)
    for what, text in (("reference text", ref_text), ("description", description)):
        if len(text) > MAX_TEXT_CHARS:
            raise _err(path, shown, f"the {what} is longer than {MAX_TEXT_CHARS} characters", fix)


# ---------------------------------------------------------------- save / load


def save_lock(lock: VoiceLock, path: str | Path) -> Path:
    """Write `lock` atomically as one safetensors file: arrays plus JSON metadata and the content digest.

    The lock is validated first, so a file this writes always loads. An existing file is replaced only on success.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    check_lock(lock, path)
    meta = {META_KEY: json.dumps(lock.metadata(), sort_keys=True, ensure_ascii=False), DIGEST_KEY: lock.digest()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(lock.arrays(), tmp, metadata=meta)
    return path


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, dict]]:
    """(safetensors metadata, {array: {"dtype", "shape"}}) from the file header only — no array data is read."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("file is too short to be safetensors")
        (n,) = struct.unpack("<Q", head)
        if n > 1024 * 1024 or n > path.stat().st_size - 8:
            raise ValueError("header length is out of range")
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    tensors = {k: {"dtype": v["dtype"], "shape": list(v["shape"])} for k, v in header.items()}
    return meta, tensors


def _read_meta(path: Path) -> tuple[dict[str, Any], str]:
    try:
        meta, _ = read_header(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, UnicodeDecodeError) as e:
        raise _err(path, None, f"not a readable safetensors file ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(meta, dict) or META_KEY not in meta:
        raise _err(path, None, "not a readthrough voice lock (no lock metadata)",
                   "pass a *.lock.safetensors file written by `readthrough cast`")
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get(META_KEY), str):
            raise ValueError("metadata is not a JSON string")
        info = json.loads(meta[META_KEY])
        if not isinstance(info, dict):
            raise ValueError("metadata is not an object")
    except (ValueError, RecursionError) as e:
        raise _err(path, None, f"lock metadata is not valid JSON ({e})") from None
    digest = meta.get(DIGEST_KEY, "")
    return info, digest if isinstance(digest, str) else ""


def _lock_from_meta(info: dict[str, Any], arrays: dict[str, np.ndarray], path: Path) -> VoiceLock:
    name = info.get("name") if isinstance(info.get("name"), str) else None
    version = info.get("format_version")
    if version not in KNOWN_FORMAT_VERSIONS:
        raise _err(path, name, f"lock format_version {version!r} is not one this readthrough reads "
                               f"({', '.join(map(str, KNOWN_FORMAT_VERSIONS))})",
                   f"upgrade readthrough or {RELOCK_FIX}")
    kind = info.get("kind")
    if kind not in lock_kinds():
        raise _err(path, name, f"unknown lock kind {kind!r} (known: {', '.join(lock_kinds())})")
    try:
        meta = LockMetadata.model_validate(info)
    except ValidationError as e:
        key = str(e.errors()[0]["loc"][0])
        what = {"seed": "an integer (or null)", "params": "a table", "sample_rate": "an integer"}.get(key, "a str")
        raise _err(path, name, f"metadata field {key!r} is missing or not {what}") from None
    _check_arrays(arrays, kind, meta.ref_text, path, name)  # before VoiceLock coerces their dtypes
    lock = VoiceLock(**meta.model_dump(exclude={"format_version"}), **arrays)
    check_lock(lock, path)  # names, rates, text lengths, reference length
    return lock


def load_lock(path: str | Path, expect_model_id: str | None = None) -> VoiceLock:
    """Read and validate a lock file written by `save_lock`.

    Checks, each failing with a VoiceLockError naming the file, voice and fix: the file exists and is a readthrough
    lock, a known format version and kind, array dtypes/shapes, the stored digest matches the contents, and (when
    `expect_model_id` is given) the lock was made by that model.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise _err(path, None, "file not found", "check the path, or list locks with `readthrough voices list`")
    if path.stat().st_size > MAX_LOCK_BYTES:
        raise _err(path, None, f"the file is {path.stat().st_size} bytes, more than a lock can be "
                               f"({MAX_LOCK_BYTES} bytes)")
    info, digest = _read_meta(path)
    name = info.get("name") if isinstance(info.get("name"), str) else None
    try:
        arrays = {k: np.array(v) for k, v in load_file(path).items()}
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt data
        raise _err(path, name, f"arrays are unreadable ({e})") from None
    lock = _lock_from_meta(info, arrays, path)
    if digest != lock.digest():
        raise _err(path, name, "contents do not match the stored digest (the file was changed or damaged)")
    if expect_model_id is not None and lock.model_id != expect_model_id:
        raise _err(path, name, f"made by model {lock.model_id!r}, not {expect_model_id!r}",
                   f"use settings whose model is {lock.model_id!r}, or {RELOCK_FIX}")
    return lock


def lock_problem(path: str | Path, digest: str) -> str | None:
    """Why the lock file at `path` cannot be used as the voice `digest` (unreadable, damaged, or replaced by another
    voice), or None when it loads and its content digest is `digest`."""
    try:
        lock = load_lock(path)
    except VoiceLockError as e:
        return str(e)
    if lock.digest() != digest:
        return (f"Voice lock {path} holds voice {lock.digest()[:12]}, not {digest[:12]} it is used as (the file was "
                f"replaced); {RELOCK_FIX}.")
    return None


def load_lock_as(path: str | Path, digest: str) -> VoiceLock:
    """`load_lock`, and the lock must be the voice `digest` (the digest it was cast and keyed under)."""
    lock = load_lock(path)
    if lock.digest() != digest:
        raise _err(path, lock.name, f"holds voice {lock.digest()[:12]}, not {digest[:12]} it is cast as (the file was "
                                    "replaced)")
    return lock


def list_locks(root: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every `*.lock.safetensors` under `root`, sorted by path, with its metadata read from the header only.

    Each metadata dict is the lock's JSON metadata plus "digest" and "path"; a file that cannot be read gets
    {"error": reason} instead so a listing never stops at one bad file.
    """
    root = Path(root)
    out = []
    for path in sorted(root.rglob(f"*{LOCK_SUFFIX}")) if root.is_dir() else []:
        try:
            info, digest = _read_meta(path)
            info = {**info, "digest": digest}
        except VoiceLockError as e:
            info = {"error": str(e)}
        out.append((path, info))
    return out
