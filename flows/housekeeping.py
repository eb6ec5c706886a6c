"""What `$READTHROUGH_HOME` holds, and pruning what nothing uses any more (`readthrough store`, `store prune`).

The work folder has: `lines/` (the line store: one .wav + one .json sidecar per line key), `locks/` (voice locks),
`auditions/<script>/` (casting takes), `prefect-results/` (cached task results, small JSON), `logs/`, and
`renders/` — one small record per output folder rendered with this home (written by `readthrough render`), so
pruning can always see every report that still names a lock.

What is *in use* is read from files, never guessed:
- an output folder (or its `render-report.json`) uses the voice locks its report names, the line keys of its cue
  sheet, and the line keys of the cached scene results that mixed a scene into that folder;
- a script uses its auditions (`auditions/<script stem>/`) and whatever its output folders use;
- a cast file uses the locks / .vox files it pins.

`prune(keep=..., older_than=...)` removes lines, locks, auditions and cached results that no kept item uses (and,
with `older_than`, only those last written before that date; with only `older_than`, everything older). A lock
that any known report (every `renders/` record whose report still exists, plus the kept ones) or a kept cast file
names is never removed. Cached results that mention a removed line or lock are removed with it, so no cache entry
points at nothing. Nothing here imports Prefect.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from pipeline.errors import SettingsError
from pipeline.files import atomic_write_json, now_iso

REPORT = "render-report.json"
AREAS = ("lines", "locks", "auditions", "prefect-results", "logs", "renders")


# ------------------------------------------------------------------------------------------------ show


@dataclass
class AreaUsage:
    name: str
    files: int = 0
    bytes: int = 0
    items: int = 0  # lines (wav+sidecar = one), locks, audition takes, results


def _files(root: Path) -> Iterable[Path]:
    if root.is_dir():
        for dirpath, _, names in os.walk(root):
            for n in names:
                yield Path(dirpath) / n


def usage(home: Path) -> list[AreaUsage]:
    """Size and count per area of the work folder (plus `other` for anything else in it)."""
    out = []
    for area in AREAS:
        u = AreaUsage(area)
        for f in _files(home / area):
            with _quiet():
                u.bytes += f.stat().st_size
                u.files += 1
                u.items += _counts_as_item(area, f)
        out.append(u)
    other = AreaUsage("other")
    if home.is_dir():
        for entry in home.iterdir():
            if entry.name in AREAS:
                continue
            for f in ([entry] if entry.is_file() else _files(entry)):
                with _quiet():
                    other.bytes += f.stat().st_size
                    other.files += 1
                    other.items += 1
    return out + [other]


def _counts_as_item(area: str, f: Path) -> int:
    if area == "lines":
        return f.suffix == ".wav"
    if area == "locks":
        return f.name.endswith((".safetensors", ".vox"))
    if area == "auditions":
        return f.suffix == ".wav"
    return 1


class _quiet:
    """Suppress OSError for files that vanish while we look (another render, another prune)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, OSError)


# ------------------------------------------------------------------------------------------------ render records


def record_render(home: Path, out_dir: Path, script: Path) -> None:
    """Remember that `out_dir` was rendered with this home (one file per folder: no lost updates)."""
    out = Path(out_dir).expanduser().resolve()
    name = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    atomic_write_json(home / "renders" / f"{name}.json",
                      {"out": str(out), "script": str(Path(script).expanduser().resolve()), "last": now_iso()})


def known_reports(home: Path) -> list[Path]:
    """Every recorded output folder's report that still exists."""
    reports = []
    for f in sorted((home / "renders").glob("*.json")):
        with _quiet():
            out = Path(json.loads(f.read_text(encoding="utf-8"))["out"])
            if (out / REPORT).is_file():
                reports.append(out / REPORT)
    return reports


# ------------------------------------------------------------------------------------------------ what is used


@dataclass
class InUse:
    line_keys: set[str] = field(default_factory=set)
    locks: set[str] = field(default_factory=set)  # resolved paths
    audition_scripts: set[str] = field(default_factory=set)  # auditions/<name>
    out_dirs: set[str] = field(default_factory=set)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _use_report(report_path: Path, used: InUse) -> None:
    report = _read_json(report_path)
    if report is None:
        raise SettingsError(f"{report_path}: not a readable render report. Pass an output folder of "
                            "`readthrough render` (it holds render-report.json).")
    used.out_dirs.add(_resolved(report_path.parent))
    for c in (report.get("cast") or {}).values():
        if isinstance(c, dict) and c.get("lock_path"):
            used.locks.add(_resolved(c["lock_path"]))
    if report.get("script_name"):
        used.audition_scripts.add(report["script_name"])
    cues = (report.get("outputs") or {}).get("cues")
    sheet = _read_json(Path(cues)) if cues else None
    for line in (sheet or {}).get("lines", []):
        if isinstance(line, dict) and line.get("key"):
            used.line_keys.add(line["key"])


def _use_cast_file(path: Path, used: InUse) -> None:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: cannot read it as a cast file ({e}).") from None
    for entry in (data.get("characters") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("lock"), str):
            lock = Path(entry["lock"]).expanduser()
            used.locks.add(_resolved(lock if lock.is_absolute() else path.parent / lock))


def collect_in_use(home: Path, keep: Iterable[str | Path]) -> InUse:
    """What the kept scripts, output folders, reports and cast files use (see module doc)."""
    used = InUse()
    for item in keep:
        p = Path(item).expanduser()
        if p.is_dir():
            if not (p / REPORT).is_file():
                raise SettingsError(f"{p} holds no {REPORT}: pass an output folder of `readthrough render`, a "
                                    "script, a report or a cast file.")
            _use_report(p / REPORT, used)
        elif p.name.endswith(".json"):
            _use_report(p, used)
        elif p.suffix == ".toml":
            _use_cast_file(p, used)
        elif p.is_file():  # a script: its auditions, and every recorded render of it
            used.audition_scripts.add(p.stem)
            for report in known_reports(home):
                data = _read_json(report) or {}
                if data.get("script") and _resolved(data["script"]) == _resolved(p):
                    _use_report(report, used)
        else:
            raise SettingsError(f"--keep {item}: no such file or folder.")
    _scene_result_keys(home, used)
    return used


def _scene_result_keys(home: Path, used: InUse) -> None:
    """Line keys of cached scene results that mixed a scene into a kept output folder (partial renders too)."""
    if not used.out_dirs:
        return
    for f in _files(home / "prefect-results"):
        data = _read_json(f)
        result = _result_payload(data)
        if not isinstance(result, dict) or "line_keys" not in result:
            continue
        mix = (result.get("mix") or {}).get("path")
        if mix and any(_resolved(mix).startswith(d + os.sep) for d in used.out_dirs):
            used.line_keys.update(k for k in result["line_keys"] if isinstance(k, str))


def _result_payload(data: dict | None):
    if not data:
        return None
    result = data.get("result")
    if isinstance(result, str):
        try:
            return json.loads(result)
        except ValueError:
            return None
    return result


def protected_locks(home: Path, used: InUse) -> set[str]:
    """Locks never removed: those any known report names, plus the kept ones."""
    locks = set(used.locks)
    for report in known_reports(home):
        for c in ((_read_json(report) or {}).get("cast") or {}).values():
            if isinstance(c, dict) and c.get("lock_path"):
                locks.add(_resolved(c["lock_path"]))
    return locks


# ------------------------------------------------------------------------------------------------ prune


@dataclass
class PrunePlan:
    files: list[Path] = field(default_factory=list)
    lines: int = 0
    locks: int = 0
    auditions: int = 0
    results: int = 0
    bytes: int = 0
    kept_locks: int = 0  # old or unused, but a report or cast file names them

    def add(self, path: Path, kind: str) -> None:
        self.files.append(path)
        with _quiet():
            self.bytes += path.stat().st_size
        setattr(self, kind, getattr(self, kind) + 1)


def parse_date(text: str) -> float:
    """'2026-11-30' or an ISO timestamp → a POSIX time (UTC when no zone is given)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"--older-than {text!r}: not a date. Write it as YYYY-MM-DD (or an ISO timestamp, "
                            "e.g. 2026-11-30T12:00).") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _old(path: Path, cutoff: float | None) -> bool:
    if cutoff is None:
        return True
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def plan_prune(home: Path, keep: list[str], older_than: str | None) -> PrunePlan:
    """What `prune` would remove (see module doc). Needs `keep`, `older_than`, or both."""
    if not keep and not older_than:
        raise SettingsError("store prune needs --keep PATH (scripts, output folders, reports or cast files still in "
                            "use) and/or --older-than DATE; nothing is removed without one.")
    cutoff = parse_date(older_than) if older_than else None
    used = collect_in_use(home, keep) if keep else None
    plan = PrunePlan()
    for wav in sorted((home / "lines").glob("*/*.wav")):
        key = wav.stem
        if (used is None or key not in used.line_keys) and _old(wav, cutoff):
            plan.add(wav, "lines")
            side = wav.with_suffix(".json")
            if side.exists():
                plan.files.append(side)
                with _quiet():
                    plan.bytes += side.stat().st_size
    protected = protected_locks(home, used or InUse())
    for lock in sorted(p for p in _files(home / "locks") if p.name.endswith((".safetensors", ".vox"))):
        if used is not None and _resolved(lock) in used.locks or not _old(lock, cutoff):
            continue
        if _resolved(lock) in protected:
            plan.kept_locks += 1
            continue
        plan.add(lock, "locks")
    if (home / "auditions").is_dir():
        for script_dir in sorted(p for p in (home / "auditions").iterdir() if p.is_dir()):
            if used is not None and script_dir.name in used.audition_scripts:
                continue
            for f in sorted(_files(script_dir)):
                if not _old(f, cutoff):
                    continue
                if f.suffix == ".wav":
                    plan.add(f, "auditions")
                else:  # the take's JSON record goes with it
                    plan.files.append(f)
    removed = {p.stem for p in plan.files if p.suffix == ".wav" and p.parent.parent == home / "lines"}
    removed_locks = {str(p.resolve()) for p in plan.files if p.parent.parent == home / "locks"}
    for f in sorted(_files(home / "prefect-results")):
        if cutoff is not None and used is None and _old(f, cutoff):
            plan.add(f, "results")
            continue
        if removed or removed_locks:
            with _quiet():
                text = f.read_text(encoding="utf-8", errors="replace")
                if any(k in text for k in removed) or any(lk in text for lk in removed_locks):
                    plan.add(f, "results")
    return plan


def apply_prune(plan: PrunePlan) -> None:
    """Delete the planned files, then empty folders they leave (never a folder that still holds something)."""
    parents = set()
    for f in plan.files:
        with _quiet():
            f.unlink()
        for d in f.parents:  # up to (not including) the area folder: lines/, locks/, auditions/ …
            if d.parent.name in AREAS or d.name in AREAS:
                if d.name not in AREAS:
                    parents.add(d)
                break
            parents.add(d)
    for d in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with _quiet():
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


__all__ = ["usage", "record_render", "known_reports", "collect_in_use", "plan_prune", "apply_prune",
           "parse_date"]
