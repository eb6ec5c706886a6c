"""VoiceLock: everything needed to speak in one locked voice, saved as one safetensors file (no pickle).

Kinds:
- "clone":   a Qwen3-TTS Base clone prompt — reference audio + exact reference text, reference codes [16, T]
             and the speaker x-vector, all made by the Base model named in `model_id`.
- "preset":  a Qwen3-TTS CustomVoice preset speaker (`params["speaker"]`, optional `params["instruct"]`).
- "preview": espeak-ng voice parameters in `params` (and a sample in `ref_audio`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

LOCK_FORMAT_VERSION = 1
LockKind = Literal["clone", "preset", "preview", "instant"]


@dataclass(frozen=True, eq=False)
class VoiceLock:
    name: str
    kind: LockKind
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

    def metadata(self) -> dict[str, Any]:
        """JSON-able fields (everything but the arrays)."""
        return {
            "format_version": LOCK_FORMAT_VERSION,
            "name": self.name,
            "kind": self.kind,
            "engine": self.engine,
            "model_id": self.model_id,
            "language": self.language,
            "ref_text": self.ref_text,
            "description": self.description,
            "seed": self.seed,
            "created": self.created,
            "params": self.params,
            "sample_rate": self.sample_rate,
        }

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
