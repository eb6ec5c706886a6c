"""Issue 18.5: the preview engine gives the same samples in any process, for every voice it can pick.

Breathy variants (f2, f3, f5, Alicia, whisper, whisperf) drew their noise from a clock-seeded generator, so two
processes rendered different samples under the same line key; the engine now fixes espeak-ng's seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("espeakng_loader")

REPO = Path(__file__).resolve().parent.parent

_PROBE = """
import hashlib, json, sys
import numpy as np
from pipeline.engines import preview
backend = preview.load_backend()
out = {}
for v in preview.pickable_variants():
    hs = []
    for text in ("Forty-one years I have kept this light.", "Why would anyone choose this voice? Quickly!"):
        s, rate = backend.synth(text, {"language": "en", "variant": v, "pitch": 50, "range": 50, "rate": 165})
        hs.append(hashlib.sha256(np.asarray(s).tobytes()).hexdigest())
    out[v] = hs
print(json.dumps(out))
"""


def _probe() -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_pickable_voice_is_identical_across_two_processes():
    from pipeline.engines import preview

    first, second = _probe(), _probe()
    assert set(first) == set(preview.pickable_variants()) and len(first) >= 30
    differ = sorted(v for v in first if first[v] != second[v])
    assert differ == [], f"voices whose samples differ between processes: {differ}"
