"""flows.replay: a render is answered from its report only when its inputs key matches and every file it wrote
is unchanged."""

from __future__ import annotations

import os

from flows import replay
from pipeline.config import Settings
from pipeline.render_report import CastRecord, RenderReport, SceneRecord, load_render_report, save_render_report


def _report(tmp_path, status="completed") -> RenderReport:
    scene = tmp_path / "scenes" / "scene-001.wav"
    master = tmp_path / "t.wav"
    lock = tmp_path / "m.lock.safetensors"
    for p in (scene, master, lock):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"data")
    return RenderReport(script="s.fountain", script_name="s", status=status, engine={"name": "instant"},
                        scenes=[SceneRecord(scene="1", index=0, heading="INT. A", status="done", path=str(scene),
                                            lines=3, rendered=3)],
                        outputs={"master_wav": str(master)}, cast={"M": CastRecord(lock_path=str(lock),
                                                                                   lock_digest="d")})


def test_replay_only_when_inputs_and_files_are_unchanged(tmp_path):
    path = tmp_path / "render-report.json"
    save_render_report(path, replay.seal(_report(tmp_path), "key-1"))
    assert replay.replay(path, "key-2", wall=lambda: 0.1) is None  # other inputs
    again = replay.replay(path, "key-1", wall=lambda: 0.25)
    assert again is not None and again["replayed"] and again["wall_seconds"] == 0.25
    assert again["counts"]["reused"] == 3 and again["scenes"][0]["cached"] and again["scenes"][0]["rendered"] == 0
    assert load_render_report(path).replayed  # written back
    master = tmp_path / "t.wav"
    st = master.stat()
    os.utime(master, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched (or rewritten) output
    assert replay.replay(path, "key-1", wall=lambda: 0.1) is None


def test_no_replay_of_failed_renders_or_missing_files(tmp_path):
    path = tmp_path / "render-report.json"
    save_render_report(path, replay.seal(_report(tmp_path, status="failed"), "k"))
    assert replay.replay(path, "k", wall=lambda: 0.1) is None
    save_render_report(path, replay.seal(_report(tmp_path), "k"))
    (tmp_path / "m.lock.safetensors").unlink()
    assert replay.replay(path, "k", wall=lambda: 0.1) is None


def test_inputs_key_follows_script_settings_and_scenes(tmp_path):
    script = tmp_path / "s.fountain"
    script.write_text("INT. A - DAY\n\nM\nHi.\n")
    s = Settings()
    key = lambda **kw: replay.inputs_key(  # noqa: E731
        script, kw.get("settings", s), "instant", None, None, None, tmp_path / "out", tmp_path / "home",
        kw.get("scenes"))
    base = key()
    assert key() == base
    assert key(scenes=["1"]) != base
    assert key(settings=s.with_overrides({"pauses.beat": 0.5})) != base
    script.write_text("INT. A - DAY\n\nM\nHello.\n")
    assert key() != base


def test_inputs_key_follows_the_libraries_that_shape_the_sound(tmp_path, monkeypatch):
    """scipy's compiled biquad kernel filters every mix (pipeline.iir): a new scipy never replays an old render."""
    from importlib import metadata

    script = tmp_path / "s.fountain"
    script.write_text("INT. A - DAY\n\nM\nHi.\n")
    key = lambda: replay.inputs_key(script, Settings(), "instant", None, None, None, tmp_path / "out",  # noqa: E731
                                    tmp_path / "home", None)  # fmt: skip
    base = key()
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0-other" if name == "scipy" else real(name))
    assert key() != base


def test_replay_is_off_with_a_configured_server(monkeypatch):
    monkeypatch.delenv("READTHROUGH_REPLAY", raising=False)
    monkeypatch.setattr("flows.server.configured_api_url", lambda: "http://127.0.0.1:4200/api")
    assert not replay.enabled()
    monkeypatch.setattr("flows.server.configured_api_url", lambda: None)
    assert replay.enabled()
    monkeypatch.setenv("READTHROUGH_REPLAY", "0")
    assert not replay.enabled()
