"""Character analysis: Evidence -> CharacterProfile (gender, age range, traits, summary), each field with its
confidence and the snippets it came from.

Two analyzers share one protocol:
- `HeuristicAnalyzer` works offline from the script alone (pronouns and gendered words near the introduction and in
  action mentions, the intro's age note, the intro's describing words and recurring parentheticals);
- `LLMAnalyzer` asks a local mlx-lm model for a JSON-only answer, validates it against the profile schema, asks once
  more to repair an invalid answer, then falls back to the heuristic analyzer with a warning.

Cast-file overrides are applied on top of either (`apply_overrides`); `profile_key` is the profile's content key.
Modules: `profile` (the profile model, overrides, key), `heuristic`, `llm` (with the mlx-lm client).
"""

from __future__ import annotations

from .heuristic import HeuristicAnalyzer
from .llm import LLMAnalyzer, LLMClient, MlxLmClient
from .profile import Analyzer


def make_analyzer(settings, client: LLMClient | None = None) -> Analyzer:
    """The analyzer that `settings.casting.analyzer` names (the LLM one falls back to the heuristic)."""
    if settings.casting.analyzer == "llm":
        return LLMAnalyzer(client or MlxLmClient(settings.models.llm), settings.models.llm)
    return HeuristicAnalyzer()
