"""`readthrough store` and `store prune`: sizes and counts of the work folder; pruning keeps what kept scripts,
output folders and cast files use, and never a lock a report or cast file names."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flows.housekeeping import plan_prune, record_render, usage

from helpers import run_cli as run

K1, K2, K3 = "line-" + "ab" * 16, "line-" + "cd" * 16, "line-" + "ef" * 16


def _file(path: Path, data: bytes | str = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _line(home: Path, key: str) -> Path:
    _file(home / "lines" / key[5:7] / f"{key}.json", json.dumps({"key": key}))
    return _file(home / "lines" / key[5:7] / f"{key}.wav", b"RIFF" + b"\0" * 400)


def _out(tmp: Path, name: str, script: Path, locks: dict, keys: list[str]) -> Path:
    out = tmp / name
    cues = _file(out / "t.cues.json", json.dumps({"lines": [{"key": k} for k in keys]}))
    _file(out / "render-report.json", json.dumps({
        "script": str(script), "script_name": script.stem, "status": "completed", "outputs": {"cues": str(cues)},
        "cast": {n: {"lock_path": str(p), "lock_digest": "d"} for n, p in locks.items()}}))
    return out


@pytest.fixture
def home(tmp_path) -> dict:
    home = Path(os.environ["READTHROUGH_HOME"])
    script = _file(tmp_path / "pilot.fountain", "INT. A - DAY\n\nA\nHi.\n")
    other = _file(tmp_path / "other.fountain", "INT. B - DAY\n\nB\nHo.\n")
    lines = {k: _line(home, k) for k in (K1, K2, K3)}
    locks = {n: _file(home / "locks" / n / f"{n}-1.lock.safetensors", b"L" * 1000) for n in "abcd"}
    out1 = _out(tmp_path, "out1", script, {"A": locks["a"]}, [K1])
    out2 = _out(tmp_path, "out2", other, {"B": locks["b"]}, [])
    record_render(home, out1, script)
    record_render(home, out2, other)
    cast = _file(tmp_path / "pilot.cast.toml", f'[characters.C]\nlock = "{locks["c"]}"\n')
    _file(home / "auditions" / "pilot" / "a" / "audition-0.wav")
    _file(home / "auditions" / "other" / "b" / "audition-0.wav")
    results = home / "prefect-results"
    _file(results / "scene-2", json.dumps({"result": json.dumps({
        "line_keys": [K2], "mix": {"path": str(out2 / "scenes" / "scene-001.wav")}})}))
    _file(results / "scene-3", json.dumps({"result": json.dumps({"line_keys": [K3], "mix": {"path": "/gone/x.wav"}})}))
    _file(results / "analyze-1", json.dumps({"result": json.dumps({"gender": "female"})}))
    return {"home": home, "script": script, "out1": out1, "out2": out2, "cast": cast, "lines": lines,
            "locks": locks}


def test_store_shows_sizes_and_counts(home, capsys):
    areas = {a.name: a for a in usage(home["home"])}
    assert areas["lines"].items == 3 and areas["lines"].files == 6
    assert areas["locks"].items == 4 and areas["locks"].bytes == 4000
    assert areas["auditions"].items == 2 and areas["prefect-results"].items == 3
    code, out, _ = run(["store"], capsys)
    assert code == 0 and "3 lines" in out and "4 voice locks" in out and "2 audition takes" in out
    assert "3 results" in out and "2 output folder(s)" in out


def test_prune_keeps_what_kept_items_use_and_every_named_lock(home, capsys):
    h = home["home"]
    code, out, _ = run(["store", "prune", "--keep", str(home["out1"]), "--keep", str(home["cast"]),
                        "--keep", str(home["script"]), "--dry-run"], capsys)
    assert code == 0 and "Would remove 2 line(s), 1 lock(s), 1 audition take(s)" in out
    assert all(p.exists() for p in home["lines"].values())  # a dry run removes nothing

    code, out, _ = run(["store", "prune", "--keep", str(home["out1"]), "--keep", str(home["cast"]),
                        "--keep", str(home["script"])], capsys)
    assert code == 0 and "Kept 1 lock(s) that a render report or cast file still names" in out
    assert home["lines"][K1].exists() and not home["lines"][K2].exists() and not home["lines"][K3].exists()
    assert not home["lines"][K3].with_suffix(".json").exists()
    locks = home["locks"]
    assert locks["a"].exists()  # kept report
    assert locks["b"].exists()  # out2 is not kept, but its report still names the lock
    assert locks["c"].exists()  # the kept cast file pins it
    assert not locks["d"].exists() and not locks["d"].parent.exists()
    assert (h / "auditions" / "pilot").is_dir() and not (h / "auditions" / "other").exists()
    results = {p.name for p in (h / "prefect-results").iterdir()}
    assert results == {"analyze-1"}  # the results that named removed lines went with them


def test_prune_keeps_lines_of_a_partial_render_through_its_scene_results(home):
    plan = plan_prune(home["home"], [str(home["out2"])], None)
    removed = {p.stem for p in plan.files if p.suffix == ".wav"}
    assert K2 not in removed and K1 in removed and K3 in removed


def test_prune_older_than_a_date(home, capsys):
    old = time.time() - 40 * 86400
    for p in (home["lines"][K3], home["locks"]["b"], home["locks"]["d"]):
        os.utime(p, (old, old))
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
    code, out, _ = run(["store", "prune", "--older-than", cutoff], capsys)
    assert code == 0 and "Removed 1 line(s), 1 lock(s)" in out
    assert not home["lines"][K3].exists() and home["lines"][K1].exists() and home["lines"][K2].exists()
    assert home["locks"]["b"].exists() and not home["locks"]["d"].exists()  # b: out2's report names it


def test_prune_refuses_to_guess(home, capsys):
    code, _, err = run(["store", "prune"], capsys)
    assert code == 2 and "needs --keep PATH" in err
    code, _, err = run(["store", "prune", "--older-than", "last tuesday"], capsys)
    assert code == 2 and "not a date" in err and "YYYY-MM-DD" in err
    assert all(p.exists() for p in home["lines"].values())
