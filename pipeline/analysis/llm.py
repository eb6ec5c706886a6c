"""The LLM analyzer: asks a local mlx-lm model for a JSON-only answer, validates it against the profile schema,
asks once more to repair an invalid answer, then falls back to the heuristic analyzer with a warning. The mlx-lm
client runs on the process's one MLX thread (`pipeline.mlx_runtime`)."""

from __future__ import annotations

import json
import warnings
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..evidence import Evidence

from .heuristic import HeuristicAnalyzer, snip
from .profile import PROFILE_FIELDS, PROFILE_VERSION, Analyzer, CharacterProfile, FieldEvidence, Gender


# --------------------------------------------------------------------------------------------- LLM analyzer


class LLMClient(Protocol):
    def complete(self, prompt: str) -> str: ...


class _LLMAnswer(BaseModel):
    """The JSON an LLM must answer with."""

    model_config = ConfigDict(extra="forbid")
    gender: Gender
    age_range: tuple[int, int] | None
    traits: list[str] = Field(max_length=8)
    summary: str = Field(min_length=1, max_length=400)
    confidence: dict[str, float] = Field(default_factory=dict)

    @field_validator("age_range")
    @classmethod
    def _ordered(cls, v):
        if v is not None and not (0 <= v[0] <= v[1] <= 120):
            raise ValueError("age_range must be [low, high] with 0 <= low <= high <= 120")
        return v

    @field_validator("confidence")
    @classmethod
    def _unit(cls, v):
        for k, c in v.items():
            if k not in PROFILE_FIELDS or not 0 <= c <= 1:
                raise ValueError(f"confidence keys are {PROFILE_FIELDS} with values 0..1; got {k}={c}")
        return v


_SCHEMA_TEXT = (
    '{"gender": "male" | "female" | "nonbinary" | "unknown", "age_range": [low, high] or null, '
    '"traits": [up to 8 short words about temperament and voice], "summary": "one or two sentences", '
    '"confidence": {"gender": 0..1, "age_range": 0..1, "traits": 0..1, "summary": 0..1}}'
)


def build_prompt(evidence: Evidence, max_lines: int = 12) -> str:
    """The analysis prompt: the character's introduction, action mentions, parentheticals and some lines."""
    intro = evidence.introduction.text if evidence.introduction else "(none)"
    parts = [
        "You are casting voices for an audio read-through of a screenplay.",
        f"Describe the character {evidence.name} from the evidence below.",
        f"Introduction: {intro}",
        "Action lines mentioning them:\n" + "\n".join(f"- {snip(t, 200)}" for t in evidence.action_mentions[:8]),
        "Parentheticals: " + ", ".join(f"({p})" for p in evidence.parentheticals[:12]),
        "Some of their lines:\n" + "\n".join(f"- {snip(t, 200)}" for t in evidence.lines[:max_lines]),
        f"Answer with ONLY one JSON object, no prose, exactly this shape: {_SCHEMA_TEXT}",
    ]
    return "\n\n".join(parts)


def extract_json(text: str) -> Any:
    """The first JSON object in `text` (models often wrap it in ``` fences or add prose)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the answer")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


class LLMAnalyzer:
    """Profiles from a local LLM. Invalid answer -> one repair prompt -> heuristic fallback with a warning."""

    def __init__(self, client: LLMClient, model_id: str, fallback: Analyzer | None = None):
        self.client = client
        self.model_id = model_id
        self.fallback = fallback or HeuristicAnalyzer()
        self.id = f"llm-{PROFILE_VERSION}:{model_id}"

    def _parse(self, answer: str) -> _LLMAnswer:
        return _LLMAnswer.model_validate(extract_json(answer))

    def analyze(self, evidence: Evidence) -> CharacterProfile:
        prompt = build_prompt(evidence)
        answer = self.client.complete(prompt)
        try:
            parsed = self._parse(answer)
        except (ValueError, ValidationError) as first_error:
            repair = (
                f"{prompt}\n\nYour previous answer was invalid ({snip(str(first_error), 300)}):\n{snip(answer, 600)}"
                f"\n\nReply again with ONLY the JSON object."
            )
            answer = self.client.complete(repair)
            try:
                parsed = self._parse(answer)
            except (ValueError, ValidationError) as second_error:
                warnings.warn(
                    f"LLM {self.model_id} gave no valid profile for {evidence.name} after one repair "
                    f"({snip(str(second_error), 200)}); using the heuristic analyzer instead.",
                    stacklevel=2,
                )
                return self.fallback.analyze(evidence)
        source = f"llm {self.model_id}"
        fe = {f: FieldEvidence(confidence=parsed.confidence.get(f, 0.6), evidence=(source,)) for f in PROFILE_FIELDS}
        return CharacterProfile(
            name=evidence.name, gender=parsed.gender, age_range=parsed.age_range,
            traits=tuple(t.strip() for t in parsed.traits if t.strip()), summary=parsed.summary.strip(),
            field_evidence=fe, analyzer=self.id,
        )


class MlxLmClient:
    """`complete(prompt)` through mlx-lm. The model loads on first use (mlx-lm is an optional extra)."""

    def __init__(self, model_id_or_path: str, max_tokens: int = 300):
        self.model_id = str(model_id_or_path)
        self.max_tokens = max_tokens
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from ..errors import ModelError

            try:
                import mlx_lm
            except ImportError:
                raise ModelError(
                    "The LLM analyzer needs mlx-lm: pip install 'readthrough[llm]', or set casting.analyzer = "
                    "\"heuristic\"."
                ) from None
            try:
                self._loaded = mlx_lm.load(self.model_id)
            except Exception as e:  # noqa: BLE001 - any load failure is a user-facing model problem
                raise ModelError(
                    f"Cannot load LLM {self.model_id!r} ({type(e).__name__}: {snip(str(e), 200)}). Set models.llm to "
                    "a local mlx-lm folder or a downloadable hub id, or use casting.analyzer = \"heuristic\"."
                ) from None
        return self._loaded

    def complete(self, prompt: str) -> str:
        # MLX streams are per thread and a process must use MLX from one thread only (the TTS engine's thread):
        # two MLX threads abort the interpreter at exit.
        from ..mlx_runtime import on_mlx_thread

        return on_mlx_thread(self._complete, prompt)

    def _complete(self, prompt: str) -> str:
        import mlx_lm

        model, tokenizer = self._load()
        text: Any = prompt
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        import mlx.core as mx

        # The thread's default stream, not mlx-lm's extra thread-local one: a second stream on the worker thread
        # can abort the interpreter at exit ("terminate called without an active exception").
        return mlx_lm.generate(model, tokenizer, prompt=text, max_tokens=self.max_tokens, verbose=False,
                               stream=mx.default_stream(mx.default_device()))
