"""`readthrough cast SCRIPT --pick NAME=INDEX`: pin an audition in the script's cast file, keeping everything else.

The cast file is edited with tomlkit, which round-trips TOML: comments, key order, other characters and other
keys of the same character are kept byte for byte; only `[characters.NAME] audition` is set. The result is
validated with the cast-file loader before it replaces the file (atomically), so a pick never leaves a broken or
half-written file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import CastFileError, did_you_mean
from .fountain import canonical_name

CAST_FILE_SUFFIX = ".cast.toml"


@dataclass(frozen=True)
class Pick:
    name: str  # the script's spelling of the character
    index: int


def default_cast_file(script: str | Path) -> Path:
    """The cast file `--pick` writes when no `--cast` is given, and that render/cast use when it exists:
    `<script stem>.cast.toml` beside the script."""
    script = Path(script)
    return script.with_name(script.stem + CAST_FILE_SUFFIX)


def parse_pick(text: str, characters: Sequence[str], auditions: int, available: dict[str, Sequence[int]] | None = None
               ) -> Pick:
    """`NAME=INDEX` → Pick, checked against the script's speaking characters and the audition count.

    `available`: the audition indexes already on disk per character (listed in the error when out of range)."""
    name, sep, idx = text.rpartition("=")
    if not sep or not name.strip() or not re.fullmatch(r"\s*\d+\s*", idx):
        raise CastFileError(f"--pick {text!r}: expected NAME=INDEX, e.g. --pick {characters[0] if characters else 'NAME'}=2 "
                            "(INDEX as in audition-<INDEX>.wav, from 0).")
    known = {canonical_name(c): c for c in characters}
    found = known.get(canonical_name(name))
    if found is None:
        raise CastFileError(f"--pick {text!r}: no speaking character {name.strip()!r} in the script."
                            f"{did_you_mean(canonical_name(name), known.values())}")
    index = int(idx)
    if index >= auditions:
        on_disk = (available or {}).get(found)
        listing = (f"the auditions of {found} are {', '.join(str(i) for i in on_disk)}" if on_disk else
                   f"each character gets {auditions} auditions, 0 … {auditions - 1} (casting.auditions)")
        raise CastFileError(f"--pick {text!r}: there is no audition {index}: {listing}. Pick one of those.")
    return Pick(found, index)


def pin_auditions(text: str, picks: Iterable[Pick], source: str = "cast file") -> str:
    """The cast file's TOML with `[characters.NAME] audition = INDEX` set for each pick; all else kept."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as e:
        raise CastFileError(f"{source}: not valid TOML ({e}). Fix the line it names, then pick again.") from None
    chars = doc.get("characters")
    if chars is None:
        chars = tomlkit.table(is_super_table=True)
        doc["characters"] = chars
    elif not isinstance(chars, dict):
        raise CastFileError(f"{source}: [characters] must hold one [characters.NAME] table per character.")
    for pick in picks:
        written = next((k for k in chars if canonical_name(str(k)) == canonical_name(pick.name)), None)
        if written is None:
            entry = tomlkit.table()
            entry["audition"] = pick.index
            chars[pick.name] = entry
        else:
            if not isinstance(chars[written], dict):
                raise CastFileError(f"{source}: [characters.{written}] must be a table of keys.")
            chars[written]["audition"] = pick.index
    return tomlkit.dumps(doc)


def write_picks(path: str | Path, picks: Sequence[Pick], characters: Iterable[str]) -> Path:
    """Set the picks in the cast file at `path` (created when missing), validated, written atomically."""
    from .castfile import load_cast_file
    from .files import atomic_path

    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        lines = "".join(f"  {p.name}:\n    audition: {p.index}\n" for p in picks)
        raise CastFileError(f"{path}: --pick edits TOML cast files only. Add this under `characters:` by hand:\n"
                            f"{lines}")
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    new = pin_auditions(old, picks, str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(new, encoding="utf-8")
        try:
            load_cast_file(tmp, characters)  # a file the loader rejects never replaces the old one
        except CastFileError as e:
            raise CastFileError(str(e).replace(str(tmp.resolve()), str(path))) from None
    return path
