"""Generated Fountain scripts for tests and benches: many short scenes of two speakers and a line of action."""

from __future__ import annotations

from pathlib import Path

LINES = (
    "The tide is turning and the lamp is still dark.", "Then light it before the boats come round the point.",
    "I have trimmed the wick twice and the oil is low.", "There is more oil in the store room under the stairs.",
    "The store room flooded in the spring, you remember.", "Then we read the charts by candle and pray for calm.",
)
SPOKEN_PER_SCENE = len(LINES) + 2  # the dialogue, and the narrator's heading and action


def long_script(path: Path, scenes: int = 12) -> Path:
    """Write SCENES scenes of MARGARET and THOMAS to PATH (12 scenes: 96 spoken lines with narration)."""
    parts = ["Title: Interrupted Night", ""]
    for s in range(scenes):
        parts += [f"INT. LAMP ROOM - NIGHT {s + 1}", "", "The wind rises.", ""]
        for i, line in enumerate(LINES):
            parts += ["MARGARET" if i % 2 == 0 else "THOMAS", f"{line} Scene {s + 1}.", ""]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
