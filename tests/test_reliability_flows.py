"""Issue 18 through the flows (fake engine, session Prefect server): damaged state is noticed and repaired, errors
that suggest a command are tested by running it, one render per output folder, plain-JSON results, seeded faults."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from helpers import run_cli as _cli, render_with_report as render

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _home(tmp_path) -> Path:
    return tmp_path / "readthrough-home"


# ---- 18.2 a damaged line file is re-rendered, reported, never mixed


def test_truncated_line_is_rerendered_and_reported(tmp_path, script, fake):
    out = tmp_path / "out"
    state, report = render(script, out)
    assert state.is_completed(), state.message
    scene_file = Path(report["scenes"][0]["path"])
    original = scene_file.read_bytes()
    cues = json.loads(Path(report["outputs"]["cues"]).read_text())
    index = report["scenes"][0]["index"]
    key = next(c["key"] for c in cues["lines"] if c.get("scene") == index)
    from pipeline.store import LineStore

    wav = LineStore(_home(tmp_path) / "lines").path(key)
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2 + 100])
    scene_file.unlink()  # the scene is mixed again: it must not use the damaged line
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert fake.rendered_keys == [key]
    assert [r["key"] for r in report["repaired_lines"]] == [key]
    assert "samples" in report["repaired_lines"][0]["reason"] or "unreadable" in report["repaired_lines"][0]["reason"]
    assert scene_file.read_bytes() == original


# ---- 18.3 / 18.4 damaged and replaced voice locks


def _lock_files(tmp_path) -> list[Path]:
    return sorted((_home(tmp_path) / "locks").rglob("*.lock.safetensors"))


def test_corrupt_lock_error_suggests_cast_force_and_running_it_repairs(tmp_path, script, fake, capsys):
    from pipeline.errors import VoiceLockError
    from pipeline.lock import load_lock, lock_problem

    out = tmp_path / "out"
    code, _, err = _cli(["render", str(script), "-o", str(out), "--engine", "fake"], capsys)
    assert code == 0, err
    cast = json.loads((out / "render-report.json").read_text())["cast"]
    name, entry = sorted(cast.items())[0]
    path = Path(entry["lock_path"])
    good = path.read_bytes()
    path.write_bytes(good[:-64] + bytes(64))  # damage the array data; the header still parses
    with pytest.raises(VoiceLockError) as info:
        load_lock(path)
    message = str(info.value)
    assert "readthrough cast SCRIPT --force" in message
    command = message.split("`")[1].replace("SCRIPT", str(script))
    argv = shlex.split(command)[1:] + ["--engine", "fake"]
    code, _, err = _cli(argv, capsys)  # the command the error suggests …
    assert code == 0, err
    assert lock_problem(path, entry["lock_digest"]) is None  # … really rewrote the lock
    assert load_lock(path).digest() == entry["lock_digest"]
    code, stdout, err = _cli(["render", str(script), "-o", str(out), "--engine", "fake", "--force"], capsys)
    assert code == 0, err


def test_replaced_lock_is_detected_and_relocked(tmp_path, script, fake):
    from pipeline.errors import VoiceLockError
    from pipeline.lock import load_lock, load_lock_as

    out = tmp_path / "out"
    state, report = render(script, out)
    assert state.is_completed()
    (a, ea), (b, eb) = sorted(report["cast"].items())[:2]
    victim = Path(ea["lock_path"])
    shutil.copy(eb["lock_path"], victim)  # a valid lock, but another voice, at the same path
    assert load_lock(victim).digest() == eb["lock_digest"]
    with pytest.raises(VoiceLockError, match="replaced"):
        load_lock_as(victim, ea["lock_digest"])
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert load_lock(victim).digest() == ea["lock_digest"]  # the voice the lines are keyed under is back
    assert fake.lock_calls == 1


# ---- 18.7 damaged deliverables


def test_damaged_master_and_emptied_subtitles_are_rebuilt(tmp_path, script, fake):
    out = tmp_path / "out"
    state, report = render(script, out)
    master, srt = Path(report["outputs"]["master_wav"]), Path(report["outputs"]["srt"])
    scene = Path(report["scenes"][1]["path"])
    originals = {p: p.read_bytes() for p in (master, srt, scene)}
    master.write_bytes(originals[master][: len(originals[master]) // 2])
    srt.write_text("")
    data = bytearray(originals[scene])
    data[-200:] = bytes(200)  # same size, different samples
    scene.write_bytes(bytes(data))
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert fake.engine_calls == 0
    for p, content in originals.items():
        assert p.read_bytes() == content, p


# ---- 18.11 one render per output folder


def test_second_render_into_the_same_folder_says_another_is_running(tmp_path, script, fake):
    from pipeline.files import folder_lock

    out = tmp_path / "out"
    with folder_lock(out, "render", name="render-report.json"):  # as a running render holds it
        from flows.render import render_flow

        state = render_flow(str(script), str(out), engine="fake", return_state=True)
    assert state.is_failed()
    assert "Another render is writing to" in state.message and str(out) in state.message
    assert fake.engine_calls == 0
    state, _ = render(script, out)  # the lock died with its holder
    assert state.is_completed(), state.message


def test_two_renders_into_different_folders_share_lines(tmp_path, script, fake):
    s1, r1 = render(script, tmp_path / "a")
    fake.reset_counts()
    s2, r2 = render(script, tmp_path / "b")
    assert s1.is_completed() and s2.is_completed()
    assert len(fake.rendered_keys) == 0 and r2["counts"]["reused"] == 30  # 18 dialogue + 12 narration
    assert Path(r1["outputs"]["master_wav"]).read_bytes() == Path(r2["outputs"]["master_wav"]).read_bytes()


def test_lines_another_render_stored_meanwhile_are_reused_not_failed(tmp_path, script, fake, monkeypatch):
    """Between the flow's look at the store and its render task, another render (another output folder, a farm
    worker) stores the chunk's lines: the task finds them stored, and the flow counts them reused, not failed."""
    import pipeline.render

    real = pipeline.render.render_missing

    def stored_meanwhile(engine, store, jobs, locks, **kw):
        real(engine, store, jobs, locks, **kw)  # "the other render"
        return real(engine, store, jobs, locks, **kw)  # this task: every line is in the store now

    monkeypatch.setattr(pipeline.render, "render_missing", stored_meanwhile)
    state, report = render(script, tmp_path / "out")
    assert state.is_completed() and report["status"] == "completed", report.get("failures")
    assert report["counts"]["rendered"] == 0 and report["counts"]["reused"] == 30 and report["counts"]["failed"] == 0


# ---- 18.12 results are plain JSON; loading imports nothing named in a file


def test_result_file_naming_a_class_imports_nothing(tmp_path, script, fake, monkeypatch):
    out = tmp_path / "out"
    state, _ = render(script, out)
    marker = tmp_path / "imported.txt"
    mod = tmp_path / "evilpkg_rt18"
    mod.mkdir()
    (mod / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Evil(dict): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    results = sorted((_home(tmp_path) / "prefect-results").glob("scene-*"))
    assert results, "scene results are persisted under the work directory"
    for i, path in enumerate(results):
        record = json.loads(path.read_text())
        if i % 2 == 0:
            result = json.loads(record["result"])
            result["mix"] = {"__class__": "evilpkg_rt18.Evil", "data": result["mix"]}
            record["result"] = json.dumps(result)
        else:
            record["metadata"]["serializer"] = {"type": "json", "object_decoder": "evilpkg_rt18.Evil"}
        path.write_text(json.dumps(record))
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert not marker.exists() and "evilpkg_rt18" not in sys.modules
    assert fake.engine_calls == 0  # lines come from the line store; only the scene mixes ran again
    for path in results[::2]:  # a record naming a class read as absent: the task ran and wrote a plain record
        assert "evilpkg_rt18" not in path.read_text()


def test_check_result_record_rejects_importing_records():
    from flows.results import UnsafeResultError, check_result_record

    plain = {"metadata": {"serializer": {"type": "json"}, "storage_key": "k"}, "result": json.dumps({"a": [1]})}
    assert json.loads(check_result_record(json.dumps(plain).encode()))["result"] == plain["result"]
    bad = [
        {**plain, "metadata": {"serializer": {"type": "pickle"}}},
        {**plain, "metadata": {"serializer": {"type": "json", "jsonlib": "evil"}}, "result": "{}"},
        {**plain, "result": json.dumps({"x": [{"__class__": "os.system", "data": "x"}]})},
        {**plain, "result": json.dumps({"__exc_type__": "builtins.ValueError", "message": "x"})},
        {**plain, "extra": 1},
    ]
    for record in bad:
        if record["metadata"]["serializer"].get("jsonlib"):
            out = json.loads(check_result_record(json.dumps(record).encode()))
            assert out["metadata"]["serializer"] == {"type": "json"}  # named modules are dropped, never imported
            continue
        with pytest.raises(UnsafeResultError):
            check_result_record(json.dumps(record).encode())


# ---- 18 "show it works": seeded fault injection


def _faulty(key: str, seed: int = 18) -> bool:
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) % 5 == 0  # ≈ 20 %


class _SeededFailures(dict):
    def get(self, key, default=None):
        return "injected fault (seeded 20 %)" if _faulty(key) else default

    def __contains__(self, key):
        return _faulty(key)


def test_seeded_faults_other_scenes_finish_failures_named_rerun_renders_exactly_them(tmp_path, script, fake):
    out = tmp_path / "out"
    fake.failing_keys = _SeededFailures()
    state, report = render(script, out)
    planned = fake.rendered_keys[:]
    failing = {k for k in planned if _faulty(k)}
    assert 1 <= len(failing) < len(planned)
    assert state.is_failed()
    assert {f["key"] for f in report["failed_lines"]} == failing
    assert all(f["reason"] == "injected fault (seeded 20 %)" for f in report["failed_lines"])
    bad_scenes = {f["scene"] for f in report["failed_lines"]}
    for s in report["scenes"]:
        assert s["status"] == ("failed" if s["scene"] in bad_scenes else "done")
    for f in report["failed_lines"]:
        assert f"line {f['source_line']}" in state.message
    fake.failing_keys = {}
    fake.reset_counts()
    state, report = render(script, out)
    assert state.is_completed(), state.message
    assert sorted(fake.rendered_keys) == sorted(failing)


# ---- 18.1 bounded line jobs


def test_long_line_truncated_with_warning_or_refused(tmp_path, script, fake):
    out = tmp_path / "out"
    state, report = render(script, out, overrides={"render.max_words_per_line": 4})
    assert state.is_completed(), state.message
    assert report["warnings"] and all("truncated" in w for w in report["warnings"])
    cues = Path(report["outputs"]["cues"]).read_text()
    assert "Forty-one years I have kept this light" not in cues
    state, report = render(script, tmp_path / "out2", overrides={"render.max_words_per_line": 4,
                                                                  "render.long_lines": "refuse"})
    assert state.is_failed() and "render.max_words_per_line = 4" in state.message and "line " in state.message


# ---- 18.6 a 5,000-character cue renders (bounded, collision-safe file names)


def test_five_thousand_character_cue_renders(tmp_path, fake):
    name_a, name_b = "A" * 5000, "A" * 4999 + "B"
    script = tmp_path / "long-cue.fountain"
    script.write_text(f"INT. ROOM - DAY\n\n{name_a}\nHello there.\n\n{name_b}\nHello back.\n\n{name_a}\nBye.\n")
    state, report = render(script, tmp_path / "out")
    assert state.is_completed(), state.message
    locks = {Path(c["lock_path"]) for c in report["cast"].values()}
    assert len(locks) == 3 and all(len(p.name) < 100 and len(p.parent.name) < 60 for p in locks)
