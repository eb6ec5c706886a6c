"""The languages Qwen3-TTS speaks: BCP-47 tags (what locks, settings and cast files use) and the model's names."""

from __future__ import annotations

from .errors import SettingsError, did_you_mean

# BCP-47 primary subtag -> the Qwen3-TTS language name (locks and settings speak BCP-47, the model its names).
QWEN_LANGUAGES = {
    "en": "english", "de": "german", "es": "spanish", "zh": "chinese", "ja": "japanese", "fr": "french",
    "ko": "korean", "ru": "russian", "it": "italian", "pt": "portuguese",
}


def language_name(code: str) -> str:
    """BCP-47 (`en`, `en-GB`, `pt_BR`) or a model language name (`english`, `auto`) -> the model's name."""
    c = (code or "auto").strip().lower().replace("_", "-")
    if c == "auto" or c in QWEN_LANGUAGES.values():
        return c
    primary = c.split("-", 1)[0]
    if primary in QWEN_LANGUAGES:
        return QWEN_LANGUAGES[primary]
    raise SettingsError(
        f"Language {code!r} is not one Qwen3-TTS speaks (render.language or a cast entry)."
        + did_you_mean(c, QWEN_LANGUAGES)
    )
