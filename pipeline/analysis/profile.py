"""The character profile: what the script says about one character (gender, age range, traits, summary), each field
with its confidence and the snippets it came from; the analyzer protocol; cast-file overrides (`apply_overrides`)
and the profile's content key (`profile_key`)."""

from __future__ import annotations

from typing import Any, Literal, Mapping, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..evidence import Evidence
from ..keys import content_key

PROFILE_VERSION = "1"
Gender = Literal["male", "female", "nonbinary", "unknown"]
PROFILE_FIELDS = ("gender", "age_range", "traits", "summary")


class FieldEvidence(BaseModel):
    """How sure an analyzer is of one field (0..1) and the text snippets that support it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    evidence: tuple[str, ...] = ()


class CharacterProfile(BaseModel):
    """What the script says about one character. JSON round-trips through `to_json` / `from_json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    gender: Gender = "unknown"
    age_range: tuple[int, int] | None = None
    traits: tuple[str, ...] = ()
    summary: str = ""
    field_evidence: dict[str, FieldEvidence] = Field(default_factory=dict)
    analyzer: str = ""

    @field_validator("age_range")
    @classmethod
    def _ordered_age(cls, v):
        if v is not None and not (0 <= v[0] <= v[1] <= 120):
            raise ValueError(f"age_range must be two ages 0..120, low first; got {list(v)}")
        return v

    def confidence(self, field: str) -> float:
        fe = self.field_evidence.get(field)
        return fe.confidence if fe else 0.0

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CharacterProfile":
        return cls.model_validate(data)


@runtime_checkable
class Analyzer(Protocol):
    id: str  # goes into the profile's content key: change it when the analyzer's behaviour changes

    def analyze(self, evidence: Evidence) -> CharacterProfile: ...


# --------------------------------------------------------------------------------------------- overrides, key


def apply_overrides(profile: CharacterProfile, overrides: Mapping[str, Any] | None) -> CharacterProfile:
    """Replace profile fields by the cast file's values; overridden fields get confidence 1 and evidence
    'cast file'. Keys other than gender / age_range / traits / summary are rejected."""
    if not overrides:
        return profile
    unknown = set(overrides) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown profile override(s) {sorted(unknown)}; allowed: {', '.join(PROFILE_FIELDS)}.")
    data = profile.to_json()
    for k, v in overrides.items():
        data[k] = list(v) if isinstance(v, tuple) else v
        data["field_evidence"][k] = {"confidence": 1.0, "evidence": ["cast file"]}
    return CharacterProfile.from_json(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def profile_key(evidence: Evidence, analyzer_id: str, overrides: Mapping[str, Any] | None = None) -> str:
    """Content key of a profile: evidence digest + analyzer id + overrides."""
    return content_key(
        "profile", PROFILE_VERSION,
        {"evidence": evidence.digest(), "analyzer": analyzer_id, "overrides": _jsonable(dict(overrides or {}))},
    )
