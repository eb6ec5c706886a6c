"""The preview engine: real, intelligible multi-voice speech from espeak-ng, on any machine, with no model download.

For drafts, timing and checking the cast and the script parse when the Qwen3-TTS weights are not there.

Backends (chosen once, in `create`):
- libespeak-ng from the `espeakng-loader` wheel (library and data shipped; `pip install 'readthrough[preview]'`),
  bound with ctypes in synchronous mode, audio retrieved in memory through the synth callback;
- else an `espeak-ng` program on PATH, run as a subprocess writing WAV to stdout (no temp files).

Determinism: libespeak-ng keeps synthesis state in C statics (random generator, flutter phase, AGC) that neither
espeak_Terminate nor espeak_Initialize resets, so two calls with the same input differ by a few samples. The library
backend therefore loads a private copy of the library, and for every utterance opens it, initialises, speaks, and
closes it (≈5 ms): a fresh state each time, so the same input gives identical samples in any order, thread or
process. The library is global state, so every call holds one module lock. The subprocess backend is a fresh
process per line and is deterministic by construction.

Licence: espeak-ng is GPL-3.0. This module is imported only when the preview engine is selected (the registry
imports engines lazily), and `espeakng-loader` is an optional extra, so the core never links it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio import SAMPLE_RATE, Audio, mel_filterbank, resample
from ..errors import CastFileError, EngineError, did_you_mean
from ..files import now_iso
from ..lock import VoiceLock
from .base import EngineInfo, RenderJob, RenderOutcome

INSTALL_HINT = "pip install 'readthrough[preview]' (or install the espeak-ng program so it is on PATH)"
PRESET_SAMPLE_TEXT = "Hello. This is how I sound when I read my lines."

# ---------------------------------------------------------------- voice parameters (pure)

PITCH_BASE, RANGE_BASE, RATE_BASE = 50, 50, 165
RATE_MIN, RATE_MAX = 80, 350
VOLUME = 70  # espeak amplitude (0-200, default 100): leaves headroom so peaks stay below full scale

MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "klatt4",
                 "Andy", "Denis", "Lee", "michel", "travis")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "anika", "belinda", "linda", "steph", "Andrea", "Alicia")
CHILD_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "zac", "anika", "Andrea")
OLD_MALE_VARIANTS = ("grandpa", "m1", "m7", "m8", "croak", "klatt3")
OLD_FEMALE_VARIANTS = ("grandma", "f1", "f4", "belinda", "linda")
ROUGH_VARIANTS = ("croak", "m1", "m8", "klatt4")
WHISPER_VARIANTS = {"male": ("whisper",), "female": ("whisperf",)}



def pickable_variants() -> tuple[str, ...]:
    """Every espeak variant this engine can choose (description pools and presets), sorted."""
    pools = (MALE_VARIANTS + FEMALE_VARIANTS + CHILD_VARIANTS + OLD_MALE_VARIANTS + OLD_FEMALE_VARIANTS
             + ROUGH_VARIANTS + sum(WHISPER_VARIANTS.values(), ()) + tuple(p["variant"] for p in PRESETS.values()))
    return tuple(sorted(set(pools)))


_FEMALE_WORDS = {
    "woman", "women", "female", "girl", "girls", "lady", "she", "her", "hers", "mother", "mom", "mum", "wife",
    "grandmother", "grandma", "sister", "daughter", "queen", "princess", "actress", "feminine", "aunt", "niece",
    "waitress", "matriarch", "madam", "mrs", "ms", "miss", "girlfriend", "widow", "nun", "heroine", "soprano", "alto",
}
_MALE_WORDS = {
    "man", "men", "male", "boy", "boys", "gentleman", "he", "his", "him", "father", "dad", "husband", "grandfather",
    "grandpa", "brother", "son", "king", "prince", "masculine", "uncle", "nephew", "guy", "sir", "mr", "patriarch",
    "waiter", "boyfriend", "widower", "priest", "monk", "hero", "tenor", "baritone", "bass",
}
_TEEN_WORDS = {"teen", "teens", "teenage", "teenager", "adolescent", "youth", "youthful", "juvenile"}
_YOUNG_WORDS = {"young", "younger", "twenties", "student"}
_OLD_WORDS = {
    "old", "elderly", "aged", "senior", "ancient", "older", "aging", "ageing", "grandfather", "grandmother",
    "grandma", "grandpa", "sixties", "seventies", "eighties", "nineties", "frail", "wizened", "geriatric",
}
_DECADES = {"twenties": 25, "thirties": 35, "forties": 45, "fifties": 55, "sixties": 65, "seventies": 75,
            "eighties": 85, "nineties": 95}

# word -> (pitch delta, range delta, rate delta)
_TRAITS: dict[str, tuple[int, int, int]] = {
    **dict.fromkeys(("deep", "low", "bass", "baritone", "booming", "resonant", "rumbling", "sonorous"), (-12, 0, 0)),
    **dict.fromkeys(("gravelly", "gruff", "raspy", "hoarse", "husky", "rough", "rasping", "smoky", "grizzled"),
                    (-6, -5, -5)),
    **dict.fromkeys(("bright", "high", "light", "chirpy", "squeaky", "shrill", "thin", "piping", "reedy"),
                    (12, 5, 0)),
    **dict.fromkeys(("warm", "soft", "gentle", "calm", "soothing", "mellow", "kind", "tender"), (0, -5, -10)),
    **dict.fromkeys(("fast", "quick", "rapid", "hurried", "energetic", "excited", "nervous", "frantic", "brisk",
                     "breathless", "urgent", "anxious", "shouting", "shouts", "yelling"), (3, 5, 30)),
    **dict.fromkeys(("slow", "measured", "deliberate", "drawling", "languid", "lazy", "tired", "weary", "sleepy",
                     "sad", "melancholy", "slowly"), (-3, -5, -30)),
    **dict.fromkeys(("monotone", "flat", "dry", "deadpan", "robotic", "bored", "stern", "cold", "clipped"),
                    (0, -25, 0)),
    **dict.fromkeys(("expressive", "animated", "lively", "dramatic", "theatrical", "bubbly", "cheerful", "sing",
                     "singsong", "playful", "warmly", "happy", "angry", "furious"), (2, 20, 5)),
    **dict.fromkeys(("loud", "commanding", "authoritative", "confident", "bold", "firm"), (-2, 10, 0)),
    **dict.fromkeys(("quiet", "quietly", "timid", "shy", "hesitant", "meek"), (2, -10, -10)),
}
_ROUGH_WORDS = {"gravelly", "gruff", "raspy", "hoarse", "husky", "rough", "rasping", "smoky", "grizzled", "croaky"}
_WHISPER_WORDS = {"whisper", "whispers", "whispering", "whispery", "breathy", "hushed", "whispered"}

# The 9 Qwen3-TTS CustomVoice preset speakers, mapped to distinct espeak voices so cast files that use presets preview.
PRESETS: dict[str, dict] = {
    "ryan": {"variant": "m3", "pitch": 45, "range": 55, "rate": 170},
    "aiden": {"variant": "m2", "pitch": 60, "range": 60, "rate": 180},
    "dylan": {"variant": "m6", "pitch": 52, "range": 50, "rate": 185},
    "eric": {"variant": "m4", "pitch": 38, "range": 45, "rate": 160},
    "uncle_fu": {"variant": "grandpa", "pitch": 30, "range": 40, "rate": 145},
    "vivian": {"variant": "f1", "pitch": 55, "range": 60, "rate": 170},
    "serena": {"variant": "f4", "pitch": 46, "range": 50, "rate": 158},
    "ono_anna": {"variant": "f2", "pitch": 64, "range": 65, "rate": 178},
    "sohee": {"variant": "f5", "pitch": 58, "range": 55, "rate": 168},
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _unit(*parts: object) -> int:
    """A stable 64-bit integer from any strings/ints (sha256), for seeded choices that survive Python's hash salt."""
    return int.from_bytes(hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()[:8], "big")


def _normalise(description: str) -> str:
    return " ".join(description.lower().split())


def _gender(words: list[str]) -> str | None:
    f = sum(w in _FEMALE_WORDS for w in words)
    m = sum(w in _MALE_WORDS for w in words)
    return "female" if f > m else "male" if m > f else None


def _age(description: str, words: list[str]) -> str | None:
    """child / teen / young / middle / old, from words, decades ("in his fifties") or numbers ("72-year-old")."""
    years = [int(y) for y in re.findall(r"\b(\d{1,3})\s*(?:-|\s)?\s*(?:years?|yrs?|yo\b)", description.lower())]
    years += [int(d) + 5 for d in re.findall(r"\b([1-9]0)'?s\b", description.lower())]
    years += [_DECADES[w] for w in words if w in _DECADES]
    if years:
        y = years[0]
        return "child" if y < 13 else "teen" if y < 20 else "young" if y < 36 else "middle" if y < 60 else "old"
    if re.search(r"middle[- ]?aged?", description.lower()):
        return "middle"
    ws = set(words)
    if ws & _OLD_WORDS:
        return "old"
    if ws & ({"child", "children", "kid", "kids", "toddler", "infant", "childlike"}) or (
            ws & {"little"} and ws & {"boy", "girl"}):
        return "child"
    if ws & _TEEN_WORDS:
        return "teen"
    if ws & _YOUNG_WORDS:
        return "young"
    if ws & {"boy", "girl"}:
        return "child"
    if ws & {"middle", "adult"}:
        return "middle"
    return None


_AGE_SHIFT = {"child": (25, 10, 10), "teen": (12, 8, 10), "young": (5, 5, 5), "middle": (-2, 0, 0),
              "old": (-8, -10, -20)}


def _pool(gender: str | None, age: str | None, words: set[str]) -> tuple[str, ...]:
    if words & _WHISPER_WORDS:
        return WHISPER_VARIANTS.get(gender or "", WHISPER_VARIANTS["male"] + WHISPER_VARIANTS["female"])
    if age == "child":
        return CHILD_VARIANTS
    if age == "old":
        return {"male": OLD_MALE_VARIANTS, "female": OLD_FEMALE_VARIANTS}.get(
            gender or "", OLD_MALE_VARIANTS + OLD_FEMALE_VARIANTS)
    if words & _ROUGH_WORDS and gender != "female":
        return ROUGH_VARIANTS
    return {"male": MALE_VARIANTS, "female": FEMALE_VARIANTS}.get(gender or "", MALE_VARIANTS + FEMALE_VARIANTS)


def trait_deltas(text: str | None) -> tuple[int, int, int]:
    """Summed (pitch, range, rate) deltas of the trait words in `text` (a description or a delivery instruct)."""
    dp = dr = ds = 0
    for w in _words(text or ""):
        p, r, s = _TRAITS.get(w, (0, 0, 0))
        dp, dr, ds = dp + p, dr + r, ds + s
    return _cap(dp, 25), _cap(dr, 35), _cap(ds, 45)


def _cap(value: int, limit: int) -> int:
    return max(-limit, min(limit, value))


def _clamp(params: dict) -> dict:
    out = dict(params)
    out["pitch"] = int(min(99, max(0, out["pitch"])))
    out["range"] = int(min(99, max(0, out["range"])))
    out["rate"] = int(min(RATE_MAX, max(RATE_MIN, out["rate"])))
    return out


def params_for(description: str, seed: int, language: str = "en") -> dict:
    """espeak-ng parameters for a voice `description` and audition `seed`: pure and deterministic.

    Gender, age and trait words choose a pool of espeak variants and shift pitch (0-99), pitch range (0-99) and rate
    (words per minute). The seed then steps through the pool (consecutive seeds give different variants) and jitters
    pitch/range/rate a little, so different seeds give different nearby voices and characters with similar
    descriptions still differ (the description's hash offsets the pool position).
    """
    desc = _normalise(description)
    words = _words(desc)
    gender, age = _gender(words), _age(desc, words)
    pool = _pool(gender, age, set(words))
    variant = pool[(_unit("pool", desc) + int(seed)) % len(pool)]
    ap, ar, aspeed = _AGE_SHIFT.get(age or "", (0, 0, 0))
    tp, tr, tspeed = trait_deltas(desc)
    jitter = _unit("jitter", desc, int(seed))
    jp, jr, js = (jitter % 13) - 6, ((jitter >> 8) % 17) - 8, ((jitter >> 16) % 21) - 10
    return _clamp({
        "language": language,
        "variant": variant,
        "pitch": PITCH_BASE + ap + tp + jp,
        "range": RANGE_BASE + ar + tr + jr,
        "rate": RATE_BASE + aspeed + tspeed + js,
    })


def preset_params(speaker: str, instruct: str | None = None, language: str = "en") -> dict:
    """espeak-ng parameters for a CustomVoice preset name (case-insensitive), nudged by the instruct's trait words."""
    key = speaker.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in PRESETS:
        raise CastFileError(f"Unknown preset speaker {speaker!r} for the preview engine.{did_you_mean(key, PRESETS)}"
                            " Use one of these names in the cast file.")
    p = dict(PRESETS[key])
    dp, dr, ds = trait_deltas(instruct)
    return _clamp({"language": language, "variant": p["variant"], "pitch": p["pitch"] + dp,
                   "range": p["range"] + dr, "rate": p["rate"] + ds, "preset": key})


def with_instruct(params: dict, instruct: str | None) -> dict:
    """Per-line delivery: trait words in a parenthetical instruct ("quietly", "shouting") shift pitch/range/rate."""
    if not instruct:
        return params
    dp, dr, ds = trait_deltas(instruct)
    if not (dp or dr or ds):
        return params
    return _clamp({**params, "pitch": params["pitch"] + dp, "range": params["range"] + dr,
                   "rate": params["rate"] + ds})


def espeak_languages(tag: str) -> list[str]:
    """espeak voice names to try for a BCP-47 tag, best first: 'en' -> en-us; 'fr-FR' -> fr-fr, fr; then en-us."""
    t = (tag or "en").strip().lower().replace("_", "-")
    primary = t.split("-")[0]
    names = ["en-us"] if t in ("en", "en-us") else [t, primary]
    return list(dict.fromkeys(names + ["en-us"]))


# ---------------------------------------------------------------- backends


class _LibraryBackend:
    """libespeak-ng via ctypes: a private copy of the library, opened fresh for each utterance (see module doc)."""

    _SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS
    _DONT_EXIT = 0x8000  # espeakINITIALIZE_DONT_EXIT
    _CHARS_UTF8 = 1
    _POS_CHARACTER = 1
    _RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4  # espeak_PARAMETER
    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    # ms of audio per synth callback. espeak's default (0: 60 ms) calls back into Python, taking the GIL, every
    # millisecond or so of synthesis; beside a scene mix on another thread each call waited for the GIL and the
    # engine ran ~1.3-1.5x slower. 1000 ms: a few calls per line. The buffer size changes the noise of the Klatt
    # and breathy variants (10 of 35), so it is part of the engine's identity (`options`): no stored take made
    # with other buffers shares a key with these.
    BUFFER_MS = 1000

    @property
    def options(self) -> dict:
        return {"synth_buffer_ms": self.BUFFER_MS}

    def __init__(self, library_path: str, data_path: str):
        self.data_path = data_path.encode()
        self.library_path = self._private_copy(library_path)
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._on_audio)  # kept alive as long as the backend
        with _LOCK:
            lib, self.sample_rate = self._open()
            try:
                lib.espeak_Info.restype = ctypes.c_char_p
                lib.espeak_Info.argtypes = [ctypes.c_void_p]
                self.version = lib.espeak_Info(None).decode().split()[0]
            finally:
                self._close(lib)

    @staticmethod
    def _private_copy(path: str) -> str:
        """Copy the library to a private file so no other user of libespeak-ng in this process shares its statics,
        and dlclose really unloads it. Falls back to the original path where the copy cannot be made."""
        try:
            tmp = Path(tempfile.mkdtemp(prefix="readthrough-espeak-"))
            atexit.register(shutil.rmtree, tmp, True)
            dst = tmp / Path(path).name
            shutil.copyfile(path, dst)
            _unload(ctypes.CDLL(str(dst)))  # probe (a noexec temp dir cannot load libraries), then let go again
            return str(dst)
        except OSError:
            return path

    def _on_audio(self, wav, n, events) -> int:
        # copied as bytes: np.ctypeslib.as_array would make (and ctypes cache for the process's life) an array type
        # and a pointer type for every new callback length, ~10 KiB per utterance
        if wav and n > 0:
            self._chunks.append(np.frombuffer(ctypes.string_at(wav, n * ctypes.sizeof(ctypes.c_short)), np.int16))
        return 0

    def _open(self):
        lib = ctypes.CDLL(self.library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = lib.espeak_Initialize(self._SYNCHRONOUS, self.BUFFER_MS, self.data_path, self._DONT_EXIT)
        if rate <= 0:
            self._close(lib)
            raise EngineError(f"espeak-ng could not start with its data in {self.data_path.decode()}; "
                              f"reinstall it: {INSTALL_HINT}.")
        lib.espeak_SetSynthCallback(self._callback)
        _fix_random_seed(lib)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        return lib, int(rate)

    @staticmethod
    def _close(lib) -> None:
        try:
            lib.espeak_Terminate()
        finally:
            _unload(lib)

    def synth(self, text: str, params: dict) -> tuple[np.ndarray, int]:
        """int16 samples and their rate for `text` spoken with `params`."""
        data = text.encode("utf-8") + b"\0"
        with _LOCK:
            lib, rate = self._open()
            try:
                if not any(lib.espeak_SetVoiceByName(f"{lang}+{params['variant']}".encode()) == 0
                           for lang in espeak_languages(params.get("language", "en"))):
                    raise EngineError(f"espeak-ng has no voice for language {params.get('language')!r}")
                for code, key in ((self._RATE, "rate"), (self._PITCH, "pitch"), (self._RANGE, "range")):
                    lib.espeak_SetParameter(code, int(params[key]), 0)
                lib.espeak_SetParameter(self._VOLUME, VOLUME, 0)
                self._chunks = []
                err = lib.espeak_Synth(data, len(data), 0, self._POS_CHARACTER, 0, self._CHARS_UTF8, None, None)
                if err != 0:
                    raise EngineError(f"espeak-ng failed to synthesise (status {err})")
                lib.espeak_Synchronize()
                chunks, self._chunks = self._chunks, []
            finally:
                self._close(lib)
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), rate


# Variants whose breath noise espeak-ng seeds from the clock. The library backend fixes the seed; an `espeak-ng`
# program cannot be told one, so there they are replaced by the nearest variant without noise (deterministic).
CLOCK_SEEDED_VARIANTS = {"f2": "f1", "f3": "f4", "f5": "f4", "Alicia": "Annie", "whisper": "m1", "whisperf": "f1"}
RAND_SEED = 1  # espeak-ng's noise generator (breathy/whisper variants): fixed, so every process speaks alike


def _fix_random_seed(lib) -> None:
    """espeak-ng seeds the noise of breathy variants (f2, f3, f5, Alicia, whisper…) from the clock at start-up;
    a fixed seed (and libc's `rand`, which older builds use) makes their samples the same in every process."""
    seed_fn = getattr(lib, "espeak_ng_SetRandSeed", None)
    if seed_fn is not None:
        seed_fn.argtypes = [ctypes.c_long]
        seed_fn(RAND_SEED)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).srand(RAND_SEED)


def _unload(lib) -> None:
    """dlclose / FreeLibrary: with no other handle open, the library's static state goes with it."""
    import _ctypes

    (getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary"))(lib._handle)


class _ProgramBackend:
    """An `espeak-ng` program on PATH, one process per utterance, WAV read from its stdout."""

    def __init__(self, program: str):
        self.program = program
        try:
            help_text = subprocess.run([program, "--help"], capture_output=True, timeout=10).stdout.decode(
                "utf-8", "replace")
            version_text = subprocess.run([program, "--version"], capture_output=True, timeout=10).stdout.decode(
                "utf-8", "replace")
        except (OSError, subprocess.SubprocessError) as e:
            raise EngineError(f"Cannot run {program}: {e}. {INSTALL_HINT}.") from None
        m = re.search(r"(\d+\.\d+(?:\.\d+)?)", version_text)
        self.version = m.group(1) if m else "unknown"
        self.has_range = "-P <integer>" in help_text  # pitch range flag (espeak-ng >= 1.51)
        self.sample_rate = 22050

    def synth(self, text: str, params: dict) -> tuple[np.ndarray, int]:
        last = ""
        variant = CLOCK_SEEDED_VARIANTS.get(params["variant"], params["variant"])  # no seed to fix from outside
        for lang in espeak_languages(params.get("language", "en")):
            cmd = [self.program, "--stdout", "-b", "1", "-v", f"{lang}+{variant}",
                   "-p", str(int(params["pitch"])), "-s", str(int(params["rate"])), "-a", str(VOLUME)]
            if self.has_range:
                cmd += ["-P", str(int(params["range"]))]
            proc = subprocess.run(cmd + ["--stdin"], input=text.encode("utf-8"), capture_output=True, timeout=120)
            if proc.returncode == 0 and len(proc.stdout) > 44:
                return parse_wav(proc.stdout)
            last = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise EngineError(f"{self.program} failed: {last}")


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """int16 mono samples and rate from a PCM WAV byte string, tolerating the unknown lengths of a streamed header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineError("espeak-ng did not write a WAV stream")
    pos, rate, channels, bits = 12, None, 1, 16
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
        elif cid == b"data":
            if rate is None or bits != 16:
                raise EngineError("espeak-ng wrote a WAV stream that is not 16-bit PCM")
            end = body + size if body + size <= len(data) else len(data)
            pcm = data[body:end]
            samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
            if channels > 1:
                samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
            return samples.astype(np.int16), int(rate)
        pos = body + size + (size & 1)
    raise EngineError("espeak-ng wrote a WAV stream without audio data")


_LOCK = threading.Lock()  # libespeak-ng is process-global state: one call at a time
_BACKEND = None
_BACKEND_LOCK = threading.Lock()


def load_backend():
    """The process's espeak-ng backend: the espeakng-loader library, else an espeak-ng program, else EngineError."""
    global _BACKEND
    with _BACKEND_LOCK:
        if _BACKEND is None:
            try:
                import espeakng_loader
            except ImportError:
                program = shutil.which("espeak-ng")
                if program is None:
                    raise EngineError(f"The preview engine needs espeak-ng, which is not installed: {INSTALL_HINT}.") \
                        from None
                _BACKEND = _ProgramBackend(program)
            else:
                _BACKEND = _LibraryBackend(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
        return _BACKEND


# ---------------------------------------------------------------- speaker embedding (proxy)


def timbre_vector(audio: Audio, n_mfcc: int = 20) -> np.ndarray:
    """A cheap, deterministic timbre vector: mean and spread of MFCCs 1..n-1 over the voiced frames, unit length.

    A proxy for a speaker embedding (it tracks spectral envelope, i.e. variant and pitch), NOT an x-vector: use it
    to compare preview voices with each other, never with Qwen3 speaker vectors.
    """
    x = resample(audio, SAMPLE_RATE).samples.astype(np.float64)
    n_fft, hop, win = 1024, 240, 600
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    n = 1 + (x.size - win) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    energy = power.sum(axis=1)
    voiced = energy > energy.max() * 1e-4 if energy.max() > 0 else np.ones(n, bool)
    logmel = np.log(power[voiced] @ mel_filterbank(SAMPLE_RATE, n_fft, 40, 60.0, 8000.0).T + 1e-10)
    k = np.arange(logmel.shape[1])
    dct = np.cos(np.pi / logmel.shape[1] * (k[None, :] + 0.5) * np.arange(n_mfcc)[:, None])
    mfcc = (logmel @ dct.T)[:, 1:]
    vec = np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)])
    norm = np.linalg.norm(vec)
    return (vec / norm if norm > 0 else vec).astype(np.float32)


# ---------------------------------------------------------------- the engine


@dataclass
class PreviewEngine:
    """Implements the Engine protocol (pipeline.engines.base) with espeak-ng."""

    backend: object
    settings: object = None
    name: str = "preview"

    @property
    def model_id(self) -> str:
        return f"espeak-ng {self.backend.version}"

    def info(self) -> EngineInfo:
        return EngineInfo(self.name, self.model_id, self.model_id, SAMPLE_RATE,
                          frozenset({"design", "clone", "preset", "instruct"}),
                          options=dict(getattr(self.backend, "options", {})))

    def synthesize(self, text: str, params: dict) -> Audio:
        """`text` spoken with espeak `params`, as 24 kHz mono float32. Raises EngineError when nothing comes out."""
        if not text or not text.strip():
            raise EngineError("empty text: nothing to speak (the line has no words after cleaning)")
        pcm, rate = self.backend.synth(text, params)
        if pcm.size == 0:
            raise EngineError(f"espeak-ng produced no audio for {text[:40]!r}")
        audio = resample(Audio(pcm.astype(np.float32) / 32768.0, rate), SAMPLE_RATE)
        return Audio(np.clip(audio.samples, -1.0, 1.0), SAMPLE_RATE)  # resampling can overshoot a full-scale peak

    def design(self, description: str, text: str, seeds: Sequence[int], language: str = "en") -> list[Audio]:
        return [self.synthesize(text, params_for(description, s, language)) for s in seeds]

    def lock(self, audio: Audio, ref_text: str, language: str = "en", *, name: str, description: str = "",
             seed: int | None = None) -> VoiceLock:
        return VoiceLock(
            name=name, kind="preview", engine=self.name, model_id=self.model_id, language=language,
            ref_text=ref_text, ref_audio=resample(audio, SAMPLE_RATE).samples, description=description, seed=seed,
            created=now_iso(), params=params_for(description, 0 if seed is None else seed, language),
        )

    def preset_lock(self, speaker: str, instruct: str | None, language: str = "en", *, name: str) -> VoiceLock:
        params = preset_params(speaker, instruct, language)
        sample = self.synthesize(PRESET_SAMPLE_TEXT, params)
        return VoiceLock(
            name=name, kind="preview", engine=self.name, model_id=self.model_id, language=language,
            ref_text=PRESET_SAMPLE_TEXT, ref_audio=sample.samples, description=f"preset {params['preset']}"
            + (f" ({instruct})" if instruct else ""), created=now_iso(), params=params,
        )

    def speaker_embedding(self, audio: Audio) -> np.ndarray:
        """Timbre proxy (see `timbre_vector`), not an x-vector."""
        return timbre_vector(audio)

    def lock_params(self, lock: VoiceLock) -> dict:
        """The espeak parameters a lock speaks with. Locks made by other engines still preview: a preset lock maps
        its speaker, any other lock derives a voice from its description (or name) and seed."""
        p = lock.params or {}
        if {"variant", "pitch", "range", "rate"} <= set(p):
            return {"language": lock.language, **p}
        if lock.kind == "preset" and p.get("speaker"):
            return preset_params(str(p["speaker"]), p.get("instruct"), lock.language)
        return params_for(lock.description or lock.name, lock.seed or 0, lock.language)

    def render(self, lock: VoiceLock, jobs: Sequence[RenderJob]) -> list[RenderOutcome]:
        """One outcome per job. espeak is deterministic, so `job.seed` only labels the take; never raises."""
        try:
            base = self.lock_params(lock)
        except Exception as e:  # a bad lock fails every line, each with the reason
            return [RenderOutcome(j.key, None, error=f"voice {lock.name!r}: {e}", seed=j.seed) for j in jobs]
        out = []
        for job in jobs:
            params = with_instruct(base, job.instruct)
            if job.language and job.language != lock.language:
                params = {**params, "language": job.language}
            try:
                out.append(RenderOutcome(job.key, self.synthesize(job.text, params), seed=job.seed))
            except Exception as e:
                out.append(RenderOutcome(job.key, None, error=f"preview engine, voice {lock.name!r}: {e}",
                                         seed=job.seed))
        return out

    def release_design(self) -> None:
        """Nothing to free: design and render share the synthesizer."""


def create(settings=None, models_dir=None) -> PreviewEngine:
    """Registry factory. `models_dir` is unused: espeak-ng ships its own data."""
    return PreviewEngine(load_backend(), settings)
