"""Parentheticals → delivery direction: an engine instruct, a pause, an effect tag, or a kept note.

Pure and table-driven. `read_parenthetical("(whispering)")` gives an instruct "Whisper." of the delivery class
"whispering" (`DELIVERIES`: the classes a cast file's `variants.<class>` names, docs/delivery.md); `(beat)`, `(pause)`,
`(a beat)` give a pause; stage business such as "(on the radio)" gives an effect tag plus a note; anything
unrecognised ("(to June)", "(re: the box)") is kept as a note only — never spoken, never guessed into an instruct.

`direct_dialogue(dialogue, beat=...)` walks a dialogue block in script order and gives each spoken part its
direction: a delivery instruct carries forward until the next delivery parenthetical, a pause applies only to the
part right after it, and an effect applies to the whole block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .screenplay import Dialogue


@dataclass(frozen=True)
class Delivery:
    """One delivery class: its name (cast files, variants), the pattern over a lower-cased clause, the instruct an
    engine hears, and the phrase a VoiceDesign description gets for a variant voice of this delivery."""

    name: str
    pattern: str
    instruct: str
    design: str


# First match per clause wins; order = specific before general.
DELIVERIES: tuple[Delivery, ...] = (
    Delivery("whispering", r"\bwhisper",
             "Whisper.", "whispering, breathy and hushed"),
    Delivery("hushed", r"\b(sotto voce|under (his|her|their) breath|hushed|barely audible)\b",
             "Speak very quietly, almost a whisper.", "speaking very quietly, almost a whisper"),
    Delivery("muttering", r"\b(mutter|mumbl|grumbl|to (himself|herself|themselves))",
             "Mutter under your breath.", "muttering under the breath, low and indistinct"),
    Delivery("shouting", r"\b(shout|yell|scream|bellow|roar|loud(ly)?\b)",
             "Shout.", "shouting, loud and forceful"),
    Delivery("angry", r"\b(angr|furious|enraged|seething|livid|heated)",
             "Speak angrily.", "speaking angrily, tense and sharp"),
    Delivery("laughing", r"\b(laugh|chuckl|giggl|amused)",
             "Speak while laughing.", "speaking while laughing"),
    Delivery("warm", r"\b(smil|warm(ly)?\b|fond(ly)?\b|tender)",
             "Speak warmly, with a smile in your voice.", "speaking warmly, with a smile in the voice"),
    Delivery("crying", r"\b(cry|cries|crying|sob|tearful|through tears|choked)",
             "Speak tearfully, close to crying.", "speaking tearfully, close to crying, voice breaking"),
    Delivery("sad", r"\b(sad(ly)?\b|sorrow|griev|mournful|heartbroken)",
             "Speak sadly.", "speaking sadly, subdued and heavy"),
    Delivery("sarcastic", r"\b(sarcas|dry(ly)?\b|drily|deadpan|wry|wryly|ironic)",
             "Speak with dry sarcasm.", "speaking with dry sarcasm"),
    Delivery("nervous", r"\b(nervous|stammer|stutter|hesitant|hesitat|unsure|uncertain)",
             "Speak nervously, hesitating.", "speaking nervously, hesitating"),
    Delivery("fearful", r"\b(scared|afraid|terrified|frightened|fearful|panick)",
             "Speak fearfully.", "speaking fearfully, shaky and tense"),
    Delivery("excited", r"\b(excit|eager|thrilled|elated|delighted)",
             "Speak with excitement.", "speaking with excitement, bright and quick"),
    Delivery("weary", r"\b(tired|exhausted|weary|wearily|sleepy|drowsy)",
             "Speak wearily.", "speaking wearily, tired and slow"),
    Delivery("cold", r"\b(cold(ly)?\b|icy|icily|flat(ly)?\b)",
             "Speak coldly.", "speaking coldly, flat and distant"),
    Delivery("urgent", r"\b(urgent|hurried|rushed|quickly|fast\b)",
             "Speak urgently and quickly.", "speaking urgently and quickly"),
    Delivery("slow", r"\b(slow(ly)?\b|drawn out|drawl)",
             "Speak slowly.", "speaking slowly, drawn out"),
    Delivery("singing", r"\b(sing|singing|sung|singsong)\b",
             "Sing.", "singing"),
    Delivery("impatient", r"\b(impatient|exasperat|irritat|annoyed)",
             "Speak impatiently.", "speaking impatiently, clipped"),
    Delivery("pleading", r"\b(plead|begging|beg\b|desperate)",
             "Speak pleadingly.", "speaking pleadingly, desperate"),
    Delivery("calm", r"\b(calm(ly)?\b|soothing|gentl)",
             "Speak calmly and gently.", "speaking calmly and gently"),
    Delivery("firm", r"\b(firm(ly)?\b|stern(ly)?\b|commanding)",
             "Speak firmly.", "speaking firmly, commanding"),
    Delivery("teasing", r"\b(teas|playful|mischiev)",
             "Speak teasingly.", "speaking teasingly, playful"),
    Delivery("surprised", r"\b(surprise|shock|stunned|astonish|disbelie)",
             "Speak with surprise.", "speaking with surprise"),
    Delivery("soft", r"\b(quiet(ly)?\b|soft(ly)?\b|low voice)",
             "Speak softly and quietly.", "speaking softly and quietly"),
)
DELIVERY_CLASSES: tuple[str, ...] = tuple(d.name for d in DELIVERIES)
BY_CLASS: dict[str, Delivery] = {d.name: d for d in DELIVERIES}
BY_INSTRUCT: dict[str, Delivery] = {d.instruct: d for d in DELIVERIES}

# (pattern, pause multiple of the beat setting)
PAUSES: tuple[tuple[str, float], ...] = (
    (r"^(a )?(long|longer|very long) (beat|pause|silence)$", 2.0),
    (r"^(a )?(beat|pause|moment|silence|breath)s?$", 1.0),
    (r"^(a )?(short|brief|tiny|small|quick) (beat|pause)$", 0.5),
    (r"^(then|after a (beat|moment|pause))$", 1.0),
)

# (pattern, effect tag): how the voice is heard, not how it is performed.
EFFECTS: tuple[tuple[str, str], ...] = (
    (r"\b(on|over|into|through) (the |a )?(radio|walkie|walkie-talkie|handset|cb)\b", "radio"),
    (r"\b(on|over|into|through) (the |a )?(phone|telephone|cell|speakerphone|line)\b|\bon speaker\b", "phone"),
    (r"\b(over|on|through) (the |a )?(intercom|pa|tannoy|loudspeaker|speaker system|megaphone)\b", "intercom"),
    (r"\b(on|from) (the |a )?(tv|television|screen|recording|tape|video)\b", "broadcast"),
    (r"\b(filtered|muffled|through the (door|wall))\b", "muffled"),
)

# Parentheticals that carry no direction at all.
IGNORED = re.compile(r"^(cont['’]?d|continuing|continued|more|o\.?s\.?|v\.?o\.?|o\.?c\.?)$")

_SPLIT = re.compile(r"\s*(?:[,;:]|\.\s|\s+-+\s+|\s+then\s+|\s+and\s+)\s*")


@dataclass(frozen=True)
class ParentheticalDirection:
    """What one parenthetical says."""

    instructs: tuple[str, ...] = ()
    pause: float = 0.0  # in beats (multiples of settings.pauses.beat)
    effects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def deliveries(self) -> tuple[str, ...]:
        """The delivery classes of `instructs`, in the same order."""
        return tuple(BY_INSTRUCT[i].name for i in self.instructs)


@dataclass(frozen=True)
class PartDirection:
    """Direction for one spoken part: what the engine hears, the pause before it (seconds), and the rest."""

    instruct: str | None = None
    pause_before: float | None = None
    effects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    delivery: str | None = None  # the delivery class of the instruct's first clause (routes to a variant voice)


def _clean(text: str) -> str:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return re.sub(r"\s+", " ", text).strip().lower()


def read_parenthetical(text: str) -> ParentheticalDirection:
    """Classify one parenthetical, clause by clause ("beat, then quietly" = a pause and an instruct)."""
    whole = _clean(text)
    if not whole or IGNORED.match(whole):
        return ParentheticalDirection()
    effects = tuple(dict.fromkeys(tag for pat, tag in EFFECTS if re.search(pat, whole)))
    instructs: list[str] = []
    pause = 0.0
    notes: list[str] = []
    for clause in (c.strip(" .!?") for c in _SPLIT.split(whole)):
        if not clause or IGNORED.match(clause):
            continue
        beats = next((mult for pat, mult in PAUSES if re.match(pat, clause)), None)
        if beats is not None:
            pause += beats
            continue
        instruct = next((d.instruct for d in DELIVERIES if re.search(d.pattern, clause)), None)
        if instruct is not None:
            if instruct not in instructs:
                instructs.append(instruct)
        elif not any(re.search(pat, clause) for pat, _ in EFFECTS):
            notes.append(clause)
    if effects:  # stage business is kept as a note too, so a reader sees what was written
        notes.insert(0, whole)
    return ParentheticalDirection(tuple(instructs), pause, effects, tuple(dict.fromkeys(notes)))


def direct_dialogue(dialogue: Dialogue, beat: float = 0.8, max_instructs: int = 2) -> list[PartDirection]:
    """One PartDirection per spoken part of `dialogue`, in order (see the module docstring for the rules)."""
    block_effects: tuple[str, ...] = ()
    for p in dialogue.parts:
        if p.kind == "parenthetical":
            block_effects += read_parenthetical(p.text).effects
    block_effects = tuple(dict.fromkeys(block_effects))

    out: list[PartDirection] = []
    instructs: tuple[str, ...] = ()
    pause = 0.0
    notes: list[str] = []
    for p in dialogue.parts:
        if p.kind == "parenthetical":
            cue = read_parenthetical(p.text)
            if cue.instructs:
                instructs = cue.instructs[:max_instructs]
            pause += cue.pause
            notes.extend(cue.notes)
            continue
        out.append(PartDirection(
            instruct=" ".join(instructs) or None,
            delivery=BY_INSTRUCT[instructs[0]].name if instructs else None,
            pause_before=round(pause * beat, 6) if pause else None,
            effects=block_effects,
            notes=tuple(notes),
        ))
        pause, notes = 0.0, []
    return out


def delivery_counts(dialogues: Sequence[Dialogue], beat: float = 0.8) -> dict[str, dict[str, int]]:
    """{character: {delivery class: number of spoken lines directed with it}}, over `dialogues` (a delivery carries
    forward within its block, so "(shouting)" before two lines counts two)."""
    counts: dict[str, dict[str, int]] = {}
    for d in dialogues:
        for direction in direct_dialogue(d, beat=beat):
            if direction.delivery is not None:
                per = counts.setdefault(d.character, {})
                per[direction.delivery] = per.get(direction.delivery, 0) + 1
    return counts

