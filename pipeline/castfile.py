"""Cast files: one per script (TOML, or YAML), letting a person override any part of the automatic cast.

```toml
[characters.MARGARET]
gender = "female"            # profile overrides: gender, age_range, traits, summary
age_range = [68, 75]
traits = ["weathered", "dry"]
description = "A dry, weathered elderly female voice, low and unhurried."   # pins the VoiceDesign description
seed = 4242                  # base seed of this character's auditions (audition i uses seed + i)
audition = 1                 # pin the pick: index of the audition to lock (files are audition-<i>.wav, from 0)
# lock = "voices/margaret.safetensors"  # use an existing lock or .vox file instead of designing
# preset = "vivian"                     # or a CustomVoice preset speaker …
# instruct = "Speak slowly."            # … with an optional instruct
# extra = false                         # true: voice from the extras pool; false: never
# variants = false                      # no delivery variants for this character (pipeline.variants)
variants.shouting = { audition = 2 }    # pin the variant take to keep (and make it even below delivery.min_lines)

[extras]
max_lines = 1                # characters with at most this many lines share the pool (default: settings)
pool = 3                     # number of pool voices

[narrator]                   # the narrator (settings [narration]): the same keys as a character but `extra`
description = "A warm, low storyteller's voice."

[lexicon]                    # respellings applied to everything spoken (pipeline.lexicon)
Siobhan = "Shiv-awn"
```

Every mistake raises `CastFileError` naming the file, the character and the key. Relative paths resolve against
the cast file's folder.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import CastFileError, did_you_mean
from .fountain import canonical_name
from .lexicon import EMPTY_LEXICON, Lexicon, parse_lexicon
from .spoken import NARRATOR

GENDERS = ("male", "female", "nonbinary", "unknown")
PROFILE_KEYS = ("gender", "age_range", "traits", "summary")
ENTRY_KEYS = (*PROFILE_KEYS, "description", "seed", "audition", "lock", "preset", "instruct", "extra", "variants")
VARIANT_KEYS = ("audition",)
EXTRAS_KEYS = ("max_lines", "pool")
TOP_KEYS = ("characters", "extras", "narrator", "lexicon")
NARRATOR_KEYS = tuple(k for k in ENTRY_KEYS if k != "extra")
LOCK_SUFFIXES = (".safetensors", ".vox")


@dataclass(frozen=True)
class CastEntry:
    """One character's pins. None = not pinned (the automatic cast decides)."""

    name: str
    gender: str | None = None
    age_range: tuple[int, int] | None = None
    traits: tuple[str, ...] | None = None
    summary: str | None = None
    description: str | None = None
    seed: int | None = None
    audition: int | None = None
    lock: Path | None = None
    preset: str | None = None
    instruct: str | None = None
    extra: bool | None = None
    variants: bool | None = None  # False: no delivery variants; None: as [delivery] settings say
    variant_pins: tuple[tuple[str, int | None], ...] = ()  # (delivery class, audition to keep or None), from
    # `variants.<class> = { audition = i }`
    source: Path | None = None  # the cast file, for error messages
    narrator: bool = False  # from the [narrator] table

    def overrides(self) -> dict[str, Any]:
        """Profile overrides for `analysis.apply_overrides` (only the fields the file sets)."""
        return {k: getattr(self, k) for k in PROFILE_KEYS if getattr(self, k) is not None}

    @property
    def pins_voice(self) -> bool:
        """True when the file fixes this character's own voice (so it is never an extra unless `extra = true`)."""
        return any(getattr(self, k) is not None for k in ("description", "seed", "audition", "lock", "preset"))

    def where(self, key: str) -> str:
        table = "narrator" if self.narrator else f"characters.{self.name}"
        return f"{self.source or 'cast file'}: [{table}] {key}"


@dataclass(frozen=True)
class ExtrasConfig:
    max_lines: int | None = None  # None: settings.casting.extras_max_lines
    pool: int | None = None  # None: settings.casting.extras_pool


@dataclass(frozen=True)
class CastFile:
    path: Path | None = None
    characters: Mapping[str, CastEntry] = field(default_factory=dict)
    extras: ExtrasConfig = ExtrasConfig()
    narrator: CastEntry | None = None  # the [narrator] table
    lexicon: Lexicon = EMPTY_LEXICON  # the [lexicon] table

    def entry(self, name: str) -> CastEntry:
        """The character's entry; an empty one (nothing pinned) when the file does not name them. The narrator's
        is the [narrator] table (a script character named NARRATOR *is* the narrator)."""
        if name == NARRATOR and self.narrator is not None:
            return self.narrator
        return self.characters.get(name) or CastEntry(name=name, source=self.path)

    def extras_max_lines(self, settings) -> int:
        return settings.casting.extras_max_lines if self.extras.max_lines is None else self.extras.max_lines

    def extras_pool(self, settings) -> int:
        return settings.casting.extras_pool if self.extras.pool is None else self.extras.pool


EMPTY_CAST = CastFile()


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CastFileError(f"Cast file not found: {path}. Pass an existing file, or leave it out.") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise CastFileError(f"{path}: not valid YAML ({e}). Fix the line it names.") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CastFileError(f"{path}: not valid TOML ({e}). Fix the line it names.") from None
    if not isinstance(data, dict):
        raise CastFileError(f"{path}: expected a table with [characters.NAME] sections, got {type(data).__name__}.")
    return data


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _entry(path: Path, name: str, raw: Any, narrator: bool = False) -> CastEntry:
    where = f"{path}: [narrator]" if narrator else f"{path}: [characters.{name}]"
    keys = NARRATOR_KEYS if narrator else ENTRY_KEYS
    if not isinstance(raw, dict):
        raise CastFileError(f"{where}: expected a table of keys ({', '.join(keys)}), got {raw!r}.")
    for key in raw:
        if key not in keys:
            why = " The narrator is never an extra." if key == "extra" else ""
            raise CastFileError(f"{where} {key}: unknown key.{why}{did_you_mean(str(key), keys)}")

    def bad(key: str, expected: str) -> CastFileError:
        return CastFileError(f"{where} {key}: expected {expected}, got {raw[key]!r}. Fix the value or remove the key.")

    values: dict[str, Any] = {}
    if "gender" in raw:
        if raw["gender"] not in GENDERS:
            raise bad("gender", " | ".join(GENDERS))
        values["gender"] = raw["gender"]
    if "age_range" in raw:
        v = raw["age_range"]
        if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v) and 0 <= v[0] <= v[1] <= 120):
            raise bad("age_range", "two whole ages, low first, e.g. [30, 39]")
        values["age_range"] = (v[0], v[1])
    if "traits" in raw:
        v = raw["traits"]
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",")]
        if not (isinstance(v, list) and all(isinstance(t, str) and t.strip() for t in v)):
            raise bad("traits", 'a list of words, e.g. ["dry", "weathered"]')
        values["traits"] = tuple(t.strip() for t in v)
    for key in ("summary", "description", "preset", "instruct"):
        if key in raw:
            if not (isinstance(raw[key], str) and raw[key].strip()):
                raise bad(key, "a non-empty string")
            values[key] = raw[key].strip()
    if "seed" in raw:
        if not (_is_int(raw["seed"]) and 0 <= raw["seed"] < 2**31 - 1):
            raise bad("seed", "a whole number 0 … 2147483646")
        values["seed"] = raw["seed"]
    if "audition" in raw:
        if not (_is_int(raw["audition"]) and raw["audition"] >= 0):
            raise bad("audition", "the index of an audition (0, 1, 2 … as in audition-<i>.wav)")
        values["audition"] = raw["audition"]
    if "extra" in raw:
        if not isinstance(raw["extra"], bool):
            raise bad("extra", "true or false")
        values["extra"] = raw["extra"]
    if "lock" in raw:
        if not (isinstance(raw["lock"], str) and raw["lock"].strip()):
            raise bad("lock", "the path of a lock (.safetensors) or .vox file")
        lock = Path(raw["lock"]).expanduser()
        lock = lock if lock.is_absolute() else path.parent / lock
        if not lock.is_file():
            raise CastFileError(
                f"{where} lock: file not found: {lock} (relative paths start at the cast file's folder). "
                "Point it at an existing lock or .vox file, or remove the key."
            )
        if lock.suffix.lower() not in LOCK_SUFFIXES:
            raise bad("lock", "a .safetensors lock or a .vox file")
        values["lock"] = lock
    if "variants" in raw:
        values.update(_variants(where, raw["variants"]))
    if "lock" in values and "preset" in values:
        raise CastFileError(f"{where} preset: a character takes either lock or preset, not both. Remove one.")
    if "instruct" in values and "preset" not in values:
        raise CastFileError(f"{where} instruct: instruct applies to a preset speaker only. Add preset = \"…\".")
    return CastEntry(name=name, source=path, narrator=narrator, **values)


def _variants(where: str, raw: Any) -> dict[str, Any]:
    """`variants = false | true` or a table `{ <delivery class> = { audition = i } }` (an empty table just asks
    for that class's variant)."""
    from .direction import DELIVERY_CLASSES

    if isinstance(raw, bool):
        return {"variants": raw}
    if not isinstance(raw, dict):
        raise CastFileError(f"{where} variants: expected false, true or a table such as "
                            f"variants.shouting = {{ audition = 2 }}, got {raw!r}.")
    pins: list[tuple[str, int | None]] = []
    for delivery, pin in raw.items():
        if delivery not in DELIVERY_CLASSES:
            raise CastFileError(
                f"{where} variants.{delivery}: {delivery!r} is not a delivery class; use one of the classes "
                f"parentheticals are read as.{did_you_mean(str(delivery), DELIVERY_CLASSES)}")
        if not isinstance(pin, dict):
            raise CastFileError(f"{where} variants.{delivery}: expected a table such as {{ audition = 2 }} (or {{}}), "
                                f"got {pin!r}.")
        for key in pin:
            if key not in VARIANT_KEYS:
                raise CastFileError(
                    f"{where} variants.{delivery}.{key}: unknown key.{did_you_mean(str(key), VARIANT_KEYS)}")
        audition = pin.get("audition")
        if audition is not None and not (_is_int(audition) and audition >= 0):
            raise CastFileError(f"{where} variants.{delivery}.audition: expected the index of a variant audition "
                                f"(0, 1, 2 …), got {audition!r}.")
        pins.append((delivery, audition))
    return {"variants": True, "variant_pins": tuple(pins)}


def _extras(path: Path, raw: Any) -> ExtrasConfig:
    if not isinstance(raw, dict):
        raise CastFileError(f"{path}: [extras] must be a table with {', '.join(EXTRAS_KEYS)}.")
    out = {}
    for key, v in raw.items():
        if key not in EXTRAS_KEYS:
            raise CastFileError(f"{path}: [extras] {key}: unknown key.{did_you_mean(str(key), EXTRAS_KEYS)}")
        if not (_is_int(v) and v >= 0):
            raise CastFileError(f"{path}: [extras] {key}: expected a whole number ≥ 0, got {v!r}.")
        out[key] = v
    return ExtrasConfig(**out)


def load_cast_file(path: str | Path, characters: Iterable[str]) -> CastFile:
    """Read and validate a cast file against the script's speaking characters (names match case-insensitively)."""
    path = Path(path).expanduser().resolve()
    data = _read(path)
    for key in data:
        if key not in TOP_KEYS:
            raise CastFileError(f"{path}: unknown section [{key}].{did_you_mean(str(key), TOP_KEYS)}")
    known = {canonical_name(c): c for c in characters}
    raw_chars = data.get("characters", {})
    if not isinstance(raw_chars, dict):
        raise CastFileError(f"{path}: [characters] must hold one [characters.NAME] table per character.")
    entries: dict[str, CastEntry] = {}
    for written, raw in raw_chars.items():
        name = known.get(canonical_name(str(written)))  # the same folding as the script's cues
        if name is None:
            raise CastFileError(
                f"{path}: [characters.{written}]: no speaking character of that name in the script."
                f"{did_you_mean(canonical_name(str(written)), known.values())}"
            )
        if name in entries:
            raise CastFileError(f"{path}: [characters.{written}]: {name} is listed twice. Keep one section.")
        entries[name] = _entry(path, name, raw)
    extras = _extras(path, data["extras"]) if "extras" in data else ExtrasConfig()
    narrator = _entry(path, NARRATOR, data["narrator"], narrator=True) if "narrator" in data else None
    if narrator is not None and NARRATOR in entries:
        raise CastFileError(f"{path}: [narrator] and [characters.{NARRATOR}] both describe the narrator (a script "
                            f"character named {NARRATOR} is the narrator). Keep one of the two tables.")
    lexicon = parse_lexicon(data["lexicon"], f"{path}: [lexicon]") if "lexicon" in data else EMPTY_LEXICON
    return CastFile(path=path, characters=entries, extras=extras, narrator=narrator, lexicon=lexicon)
