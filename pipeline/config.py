"""Frozen, validated settings. The models below are the one source of defaults and bounds; a user file (TOML, any
subset of the keys) and CLI flags override them. `pipeline/configs/default.toml` documents every key with its
default (a test keeps it equal to these models). Everything is checked at load: unknown keys (with a did-you-mean
naming the file and key), every number within its bounds, formats, the language, the loudness preset's ranges."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SettingsError, did_you_mean

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped inside the package
DEFAULT_SETTINGS = CONFIG_DIR / "default.toml"
MasterFormat = Literal["wav", "flac", "m4b", "mp3"]
BROADCAST = (-16.0, -1.0)  # loudness.preset "broadcast": integrated LUFS, true-peak ceiling (dBTP)
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,8})*$", re.IGNORECASE)  # BCP-47 shape: en, en-GB, pt_BR


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Frozen):
    voice_design: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-VoiceDesign-bf16"
    base_final: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"
    base_draft: str = "mlx-community/Qwen3-TTS-12Hz-0.6B-Base-bf16"
    custom_voice: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-CustomVoice-bf16"
    llm: str = "mlx-community/Qwen2.5-1.5B-Instruct-4bit"
    memory_factor: float = Field(1.5, ge=0.0, le=16.0)  # free memory needed = factor × weights size (0: no check)


class RenderSettings(_Frozen):
    engine: str = "auto"  # "auto" or a registered engine (pipeline.engines): qwen3 | preview | instant
    quality: Literal["draft", "final"] = "final"
    language: str = "en"  # BCP-47 (en, en-GB) or a Qwen3-TTS language name; "auto" lets the model guess
    batch_size: int = Field(8, ge=1, le=64)
    chunk_lines: int = Field(64, ge=1, le=10_000)  # lines per render task (one engine session); scenes mix as theirs are stored
    mix_while_rendering: bool = True  # mix finished scenes on a second thread while the engine renders on
    temperature: float = Field(0.9, ge=0.0, le=2.0)
    top_k: int = Field(50, ge=0, le=1000)  # 0: no top-k cut
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.05, ge=0.5, le=2.0)
    max_retakes: int = Field(2, ge=0, le=10)
    # generous speech time allowance per word for max_tokens and runaway checks
    seconds_per_word: float = Field(1.2, gt=0.0, le=10.0)
    min_seconds: float = Field(2.0, ge=0.0, le=120.0)  # floor of the allowance for very short lines
    silence_rms: float = Field(1e-4, ge=0.0, le=1.0)  # a take quieter than this is "near-silent" and retaken
    max_words_per_line: int = Field(400, ge=1, le=100_000)  # hard limit on the text of one line job
    long_lines: Literal["truncate", "refuse"] = "truncate"  # beyond the limit: cut with a warning, or stop
    max_chunk_seconds: float = Field(12.0, ge=3.0, le=60.0)  # longer lines are split into pieces (estimated length)
    min_chunk_seconds: float = Field(2.0, ge=0.0, le=10.0)  # shorter pieces merge with a neighbour
    speaking_rate: float = Field(2.6, ge=1.0, le=6.0)  # words per second, for estimating a line's length

    @field_validator("engine")
    @classmethod
    def _registered_engine(cls, v: str) -> str:
        from .engines import AUTO, engine_names

        name = v.strip().lower()
        if name != AUTO and name not in engine_names():
            raise ValueError(f"unknown engine {v!r}.{did_you_mean(name, [AUTO, *engine_names()])}")
        return name

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        from .languages import QWEN_LANGUAGES

        if v != "auto" and v.lower() not in QWEN_LANGUAGES.values() and not _LANGUAGE_TAG.match(v):
            raise ValueError(f"{v!r} is not a language tag: use BCP-47 such as \"en\", \"en-GB\" or \"de\"")
        return v

    @model_validator(mode="after")
    def _engine_speaks_language(self):
        if self.engine == "qwen3":
            from .languages import language_name

            language_name(self.language)  # SettingsError naming the languages Qwen3-TTS speaks
        return self


class CastingSettings(_Frozen):
    analyzer: Literal["heuristic", "llm"] = "heuristic"
    auditions: int = Field(3, ge=1, le=16)
    audition_seed: int = Field(1234, ge=0, le=2**63 - 1)
    sample_text: str = (
        "The quick brown fox jumps over the lazy dog. She sells seashells by the seashore, "
        "and we wondered: why would anyone choose this voice?"
    )
    extras_max_lines: int = Field(1, ge=0, le=10_000)  # characters with at most this many lines share the pool
    extras_pool: int = Field(3, ge=0, le=32)


class DeliverySettings(_Frozen):
    """How parentheticals change a locked (cloned) voice: `variants` (a per-delivery variant voice, designed and
    locked at cast time), `instruct` (the instruct prefixed to the Base in-context prompt), `both`, or `off`."""

    mode: Literal["variants", "instruct", "both", "off"] = "variants"
    min_lines: int = Field(2, ge=1, le=1000)  # a character's delivery class needs this many lines to get a variant voice
    min_similarity: float = Field(0.7, ge=-1.0, le=1.0)  # cosine of a variant's x-vector to the neutral lock's
    auditions: int = Field(3, ge=1, le=16)  # VoiceDesign auditions per variant

    @property
    def variants(self) -> bool:
        return self.mode in ("variants", "both")

    @property
    def instruct(self) -> bool:
        return self.mode in ("instruct", "both")


class PauseSettings(_Frozen):
    same_speaker: float = Field(0.25, ge=0.0, le=30.0)  # seconds between two lines of one speaker
    speaker_change: float = Field(0.5, ge=0.0, le=30.0)  # seconds on a change of speaker
    beat: float = Field(0.8, ge=0.0, le=30.0)  # for (beat) / (pause) parentheticals
    scene_head: float = Field(0.3, ge=0.0, le=30.0)
    scene_tail: float = Field(1.0, ge=0.0, le=30.0)
    sentence: float = Field(0.2, ge=0.0, le=5.0)  # between the pieces of a long line split into several
    trim_silence: bool = True  # trim each rendered line's leading/trailing silence before mixing
    trim_threshold_db: float = Field(-45.0, ge=-90.0, le=-10.0)  # silence: below the line's peak by this much
    trim_pad: float = Field(0.015, ge=0.0, le=0.5)  # seconds of the silence kept at each end


class NarrationSettings(_Frozen):
    """The narrator: which non-dialogue parts of the script are read, in which voice, with which pauses."""

    mode: Literal["action", "headings", "none", "all"] = "action"
    description: str = Field(
        "A calm, clear, mid-range storyteller's voice, warm and unhurried, with even pacing and crisp diction.",
        min_length=1, max_length=1000)
    subtitles: bool = True  # SRT/VTT include the narration (the cue sheet and labels always do)
    pause: float = Field(0.6, ge=0.0, le=10.0)  # seconds between a narration line and the line before it
    heading_pause: float = Field(0.9, ge=0.0, le=10.0)  # seconds after a spoken scene heading


class OffscreenSettings(_Frozen):
    """How off-screen (O.S./O.C.) and voice-over (V.O.) lines are mixed."""

    extensions: tuple[str, ...] = ("O.S.", "O.C.", "OS", "OC", "OFF", "OFF SCREEN", "OFF-SCREEN")
    gain_db: float = Field(-4.0, ge=-24.0, le=0.0)  # off-screen lines sit this far below the others
    low_hz: float = Field(180.0, ge=0.0, le=2000.0)  # gentle band limit (0: no high-pass)
    high_hz: float = Field(5000.0, ge=1000.0, le=20000.0)
    voice_over: Literal["dry", "offscreen"] = "dry"  # V.O. lines: untouched, or mixed like off-screen ones

    @model_validator(mode="after")
    def _band_is_ordered(self):
        if self.low_hz and self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz = {self.low_hz:g} must be below high_hz = {self.high_hz:g} (the band off-screen "
                             "lines are heard through); set offscreen.low_hz = 0 for no high-pass")
        return self


class LoudnessSettings(_Frozen):
    preset: Literal["broadcast", "acx", "custom"] = "broadcast"
    line_lufs: float = Field(-20.0, ge=-40.0, le=-5.0)  # each line normalised to this before mixing
    target_lufs: float = Field(-16.0, ge=-40.0, le=-5.0)  # integrated loudness of scenes and master
    true_peak_db: float = Field(-1.0, ge=-20.0, le=0.0)
    acx_rms_range: tuple[float, float] = (-23.0, -18.0)  # dB RMS, low first
    acx_peak_db: float = Field(-3.0, ge=-20.0, le=0.0)

    @field_validator("acx_rms_range")
    @classmethod
    def _rms_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        low, high = v
        if not -60.0 <= low <= high <= 0.0:
            raise ValueError(f"must be [low, high] dB RMS with -60 <= low <= high <= 0; got {list(v)}")
        return v

    @model_validator(mode="after")
    def _preset_agrees(self):
        """"broadcast" is -16 LUFS / -1 dBTP: other values need preset "custom" (else they would silently win)."""
        if self.preset == "broadcast" and (self.target_lufs, self.true_peak_db) != BROADCAST:
            raise ValueError(f"preset \"broadcast\" is {BROADCAST[0]:g} LUFS and {BROADCAST[1]:g} dBTP, but "
                             f"target_lufs = {self.target_lufs:g} and true_peak_db = {self.true_peak_db:g}: set "
                             "loudness.preset = \"custom\" to use your own target")
        return self


class OutputSettings(_Frozen):
    format: Literal["wav", "flac"] = "wav"
    sample_rate: int = Field(24_000, ge=8_000, le=192_000)  # scenes and master; lines are resampled to it
    stereo: bool = False
    dual_pan: float = Field(0.3, ge=-1.0, le=1.0)  # pan magnitude for the two sides of dual dialogue when stereo
    master: bool = True
    # wav/flac; m4b/mp3 are written when ffmpeg is available (skipped with a note otherwise)
    master_formats: tuple[MasterFormat, ...] = Field(("wav",), min_length=1)
    subtitles: bool = True

    @field_validator("master_formats", mode="before")
    @classmethod
    def _lower(cls, v):
        return [str(f).lower().lstrip(".") for f in v] if isinstance(v, (list, tuple)) else v


class RegressionSettings(_Frozen):
    duration_tol_s: float = Field(0.05, ge=0.0, le=60.0)
    loudness_tol_db: float = Field(1.0, ge=0.0, le=60.0)
    spectral_tol_db: float = Field(3.0, ge=0.0, le=120.0)
    speaker_min_similarity: float = Field(0.9, ge=-1.0, le=1.0)  # cosine similarity
    timing_tol_s: float = Field(0.02, ge=0.0, le=60.0)  # change of the pause before a line (start minus previous end)
    require_exact: bool = False  # also fail when samples differ within tolerance (same-machine CI)


class DeploySettings(_Frozen):
    work_pool: str = "apple-silicon"
    concurrency_limit: str = "mlx"
    render_deployment: str = "render-script"
    cast_deployment: str = "cast-script"
    regression_deployment: str = "audio-regression"
    schedule_cron: str = "0 3 * * *"
    schedule_timezone: str = "UTC"
    schedule_script: str = "data/sample.fountain"
    shared_root: str = ""  # a path (or fsspec URL) all workers mount, for farm mode
    allow_cpu_mlx: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    mlx_slots: int = Field(1, ge=1, le=1024)  # limit of the `mlx` global concurrency limit: GPUs (Macs) in the farm
    schedule_out_dir: str = "renders/nightly"  # the nightly render's output folder (relative: in the checkout)
    schedule_active: bool = True  # false: the nightly schedule is created paused
    farm_shards: int = Field(0, ge=0, le=10_000)  # scenes split into this many shards; 0 = one per online worker
    farm_timeout_s: float = Field(6 * 3600, gt=0, le=7 * 24 * 3600)  # give up waiting for a shard after this long


class Settings(_Frozen):
    models: ModelSettings = ModelSettings()
    render: RenderSettings = RenderSettings()
    casting: CastingSettings = CastingSettings()
    delivery: DeliverySettings = DeliverySettings()
    pauses: PauseSettings = PauseSettings()
    narration: NarrationSettings = NarrationSettings()
    offscreen: OffscreenSettings = OffscreenSettings()
    loudness: LoudnessSettings = LoudnessSettings()
    output: OutputSettings = OutputSettings()
    regression: RegressionSettings = RegressionSettings()
    deploy: DeploySettings = DeploySettings()

    def with_overrides(self, overrides: dict[str, Any]) -> "Settings":
        """Apply dotted overrides, e.g. {"render.engine": "preview"}; validated like a file."""
        data = self.model_dump()
        for dotted, value in overrides.items():
            _set_dotted(data, dotted, value, source="command-line flags")
        return _validate(data, "command-line flags")


def _set_dotted(data: dict, dotted: str, value: Any, source: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for p in parents:
        if not isinstance(node.get(p), dict):
            raise SettingsError(_unknown(dotted, source))
        node = node[p]
    node[leaf] = value


def _known_keys(model: type[BaseModel] = None, prefix: str = "") -> dict[str, bool]:
    """Every dotted key of the settings -> whether it holds free-form keys of its own (a dict such as deploy.env)."""
    out: dict[str, bool] = {}
    for name, info in (model or Settings).model_fields.items():
        key = prefix + name
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out[key] = False
            out.update(_known_keys(sub, key + "."))
        else:
            out[key] = getattr(sub, "__origin__", None) is dict
    return out


def _unknown(dotted: str, source: str) -> str:
    known = _known_keys()
    close = difflib.get_close_matches(dotted, list(known), n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]!r}?" if close else f". Known sections: {', '.join(Settings.model_fields)}."
    return f"Unknown setting {dotted!r} in {source}{hint}"


def _check_keys(data: dict, source: str, prefix: str = "") -> None:
    """Unknown keys are errors that name the file and the key, with the closest known key."""
    known = _known_keys()
    for k, v in data.items():
        key = prefix + str(k)
        if key not in known:
            raise SettingsError(_unknown(key, source))
        if isinstance(v, dict) and not known[key]:
            _check_keys(v, source, key + ".")


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate(data: dict, source: str) -> Settings:
    _check_keys(data, source)
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise SettingsError(f"Invalid settings in {source}: {problems}. Every key, its default and its range: "
                            f"{DEFAULT_SETTINGS}.") from None


def _problem(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    got = err.get("input")
    shown = "" if isinstance(got, (dict, BaseModel)) else f" (got {got!r})"
    return f"{loc or 'settings'}: {err['msg']}{shown}"


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"Settings file not found: {path}. Pass an existing file to --settings.") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e}). Fix the line it names.") from None


def load_settings(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """The defaults (the models above), then `path` (a TOML file with any subset of the keys), then dotted
    `overrides` (e.g. {"render.engine": "preview"} from flags). Raises SettingsError naming the file and key."""
    settings = Settings() if path is None else _validate(_read_toml(Path(path)), str(path))
    return settings.with_overrides(overrides) if overrides else settings


def home_dir() -> Path:
    """The user/work directory: $READTHROUGH_HOME, else ~/.readthrough. Holds the line store, locks, caches."""
    return Path(os.environ.get("READTHROUGH_HOME") or Path.home() / ".readthrough").expanduser()
