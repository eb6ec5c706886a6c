"""Frozen, validated settings. Defaults live in configs/default.toml; a user file and CLI flags override them."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SettingsError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_SETTINGS = CONFIG_DIR / "default.toml"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Frozen):
    voice_design: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-VoiceDesign-bf16"
    base_final: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-Base-bf16"
    base_draft: str = "mlx-community/Qwen3-TTS-12Hz-0.6B-Base-bf16"
    custom_voice: str = "mlx-community/Qwen3-TTS-12Hz-1.7B-CustomVoice-bf16"
    llm: str = "mlx-community/Qwen2.5-1.5B-Instruct-4bit"
    memory_factor: float = 1.5  # free memory needed = factor × weights size


class RenderSettings(_Frozen):
    engine: Literal["auto", "qwen3", "preview", "instant"] = "auto"
    quality: Literal["draft", "final"] = "final"
    language: str = "en"
    batch_size: int = Field(8, ge=1, le=64)
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.05
    max_retakes: int = Field(2, ge=0, le=10)
    seconds_per_word: float = 1.2  # generous speech time allowance per word for max_tokens and runaway checks
    min_seconds: float = 2.0  # floor of the allowance for very short lines
    silence_rms: float = 1e-4  # a take quieter than this is "near-silent" and retaken


class CastingSettings(_Frozen):
    analyzer: Literal["heuristic", "llm"] = "heuristic"
    auditions: int = Field(3, ge=1, le=16)
    audition_seed: int = 1234
    sample_text: str = (
        "The quick brown fox jumps over the lazy dog. She sells seashells by the seashore, "
        "and we wondered: why would anyone choose this voice?"
    )
    extras_max_lines: int = Field(1, ge=0)  # characters with at most this many lines share the extras pool
    extras_pool: int = Field(3, ge=0)


class PauseSettings(_Frozen):
    same_speaker: float = 0.25  # seconds between two lines of one speaker
    speaker_change: float = 0.5  # seconds on a change of speaker
    beat: float = 0.8  # for (beat) / (pause) parentheticals
    scene_head: float = 0.3
    scene_tail: float = 1.0


class LoudnessSettings(_Frozen):
    preset: Literal["broadcast", "acx", "custom"] = "broadcast"
    line_lufs: float = -20.0  # each line normalised to this before mixing
    target_lufs: float = -16.0  # integrated loudness of scenes and master
    true_peak_db: float = -1.0
    acx_rms_range: tuple[float, float] = (-23.0, -18.0)
    acx_peak_db: float = -3.0


class OutputSettings(_Frozen):
    format: Literal["wav", "flac"] = "wav"
    sample_rate: int = Field(24_000, ge=8_000, le=192_000)  # scenes and master; lines are resampled to it
    stereo: bool = False
    dual_pan: float = 0.3  # -1..1 pan magnitude for the two sides of dual dialogue when stereo
    master: bool = True
    master_formats: tuple[str, ...] = ("wav",)  # plus "m4b"/"mp3" when ffmpeg is available
    subtitles: bool = True


class RegressionSettings(_Frozen):
    duration_tol_s: float = 0.05
    loudness_tol_db: float = 1.0
    spectral_tol_db: float = 3.0
    speaker_min_similarity: float = 0.9
    timing_tol_s: float = 0.02  # change of the pause before a line (start minus previous line's end)
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
    mlx_slots: int = Field(1, ge=1)  # limit of the `mlx` global concurrency limit: GPUs (Macs) in the farm
    schedule_out_dir: str = "renders/nightly"  # the nightly render's output folder (relative: in the checkout)
    schedule_active: bool = True  # false: the nightly schedule is created paused
    farm_shards: int = Field(0, ge=0)  # scenes split into this many shards; 0 = one per online worker
    farm_timeout_s: float = Field(6 * 3600, gt=0)  # give up waiting for a shard after this long


class Settings(_Frozen):
    models: ModelSettings = ModelSettings()
    render: RenderSettings = RenderSettings()
    casting: CastingSettings = CastingSettings()
    pauses: PauseSettings = PauseSettings()
    loudness: LoudnessSettings = LoudnessSettings()
    output: OutputSettings = OutputSettings()
    regression: RegressionSettings = RegressionSettings()
    deploy: DeploySettings = DeploySettings()

    def with_overrides(self, overrides: dict[str, Any]) -> "Settings":
        """Apply dotted overrides, e.g. {"render.engine": "preview"}; validated like a file."""
        data = self.model_dump()
        for dotted, value in overrides.items():
            _set_dotted(data, dotted, value, source="override")
        return _validate(data, "command-line flags")


def _set_dotted(data: dict, dotted: str, value: Any, source: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for p in parents:
        if not isinstance(node.get(p), dict):
            raise SettingsError(f"Unknown setting {dotted!r} ({source}).")
        node = node[p]
    node[leaf] = value


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate(data: dict, source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise SettingsError(f"Invalid settings in {source}: {problems}. See configs/default.toml for every key.") from None


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"Settings file not found: {path}. Pass an existing file to --settings.") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e}). Fix the line it names.") from None


def load_settings(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults from configs/default.toml, then `path` (a TOML file), then dotted `overrides`."""
    data = _read_toml(DEFAULT_SETTINGS) if DEFAULT_SETTINGS.exists() else {}
    source = str(DEFAULT_SETTINGS)
    if path is not None:
        data = _merge(data, _read_toml(Path(path)))
        source = str(path)
    settings = _validate(data, source)
    return settings.with_overrides(overrides) if overrides else settings


def home_dir() -> Path:
    """The user/work directory: $READTHROUGH_HOME, else ~/.readthrough. Holds the line store, locks, caches."""
    return Path(os.environ.get("READTHROUGH_HOME") or Path.home() / ".readthrough").expanduser()
