"""The command line as a person meets it: checks before Prefect, not-Fountain files, --format, the same --engine
choices everywhere, model errors without raw hub text (kept for -v), no telemetry, a cast table that fits 80
columns, and one truth in the report (engine reason, wall time, plain title)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from pipeline.errors import ModelError, ScriptError, SettingsError

from helpers import run_cli as run


PROSE = ("It was a cold morning when I left the house. The street was quiet and the shops were still closed.\n\n"
         "I walked to the station thinking about what my sister had said the night before.\n")


# ---------------------------------------------------------------------------------------------- before Prefect


def test_argument_errors_come_back_before_prefect_is_imported(tmp_path, sample_script):
    """`--scenes 99` (and any other input mistake) is found by the preflight: Prefect is never imported."""
    code = textwrap.dedent(f"""
        import sys
        from flows.cli import main
        try:
            main(["render", {str(sample_script)!r}, "-o", {str(tmp_path / "out")!r}, "--scenes", "99"])
        except SystemExit as e:
            print("EXIT", e.code, "prefect" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "READTHROUGH_HOME": str(tmp_path / "home")})
    assert "EXIT 2 False" in done.stdout, done.stdout + done.stderr
    assert "--scenes: no scene 99" in done.stderr and "numbers 1, 2, 3, 4" in done.stderr


@pytest.mark.parametrize("command", ["render", "cast"])
def test_prose_is_not_fountain(tmp_path, capsys, command):
    notes = tmp_path / "notes.txt"
    notes.write_text(PROSE)
    argv = [command, str(notes)] + (["-o", str(tmp_path / "out")] if command == "render" else [])
    code, out, err = run(argv, capsys)
    assert code == 2
    assert str(notes) in err and "does not look like a Fountain screenplay" in err
    assert "INT. KITCHEN - NIGHT" in err and "character cue in CAPITALS" in err
    assert not (tmp_path / "out").exists()


def test_empty_file_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty.fountain"
    empty.write_text("\n\n")
    code, _, err = run(["render", str(empty), "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and f"{empty} is empty" in err and "Fountain script has scene headings" in err


def test_parse_only_warns_on_prose(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text(PROSE)
    code, _, err = run(["parse", str(notes)], capsys)
    assert code == 0 and "Warning:" in err and "does not look like a Fountain screenplay" in err


def test_scenes_without_dialogue_is_a_warning(tmp_path):
    from flows.cli.preflight import preflight

    script = tmp_path / "silent.fountain"
    script.write_text("INT. ATTIC - NIGHT\n\nDust falls through the light.\n\nEXT. ROOF - NIGHT\n\nRain.\n")
    pre = preflight(script, engine="instant")
    assert any("no dialogue" in w and str(script) in w for w in pre.warnings)


def test_read_script_still_accepts_fountain_fragments(tmp_path):
    from pipeline.fountain import check_screenplay, read_script

    fragment = tmp_path / "fragment.fountain"
    fragment.write_text("> THE END <\n\n===\n\nCUT TO:\n")
    screenplay = read_script(fragment)  # any text is Fountain (the parser's peer suites use such files)
    with pytest.raises(ScriptError, match="does not look like"):
        check_screenplay(screenplay, fragment)


# ---------------------------------------------------------------------------------------------- formats


def test_format_flags_become_master_formats():
    from flows.cli.preflight import master_overrides

    assert master_overrides(("MP3", "flac", "mp3")) == {"output.master_formats": ["mp3", "flac"]}
    assert master_overrides(()) == {}


def test_mp3_without_ffmpeg_says_so_before_rendering(tmp_path, capsys, monkeypatch, sample_script):
    import flows.cli.preflight as pf

    monkeypatch.setattr(pf.shutil, "which", lambda name: None)
    code, _, err = run(["render", str(sample_script), "-o", str(tmp_path / "out"), "--format", "mp3"], capsys)
    assert code == 2 and "mp3 master needs ffmpeg" in err and "apt-get install ffmpeg" in err
    with pytest.raises(SettingsError, match="m4b master needs ffmpeg"):
        pf.preflight(sample_script, engine="instant", overrides=pf.master_overrides(["m4b"]))


def test_unknown_format_is_refused_by_click(tmp_path, capsys, sample_script):
    code, _, err = run(["render", str(sample_script), "-o", str(tmp_path / "o"), "--format", "ogg"], capsys)
    assert code == 2 and "'ogg' is not one of 'wav', 'flac', 'mp3', 'm4b'" in err


# ---------------------------------------------------------------------------------------------- messages


def test_every_command_lists_the_same_engine_choices(capsys):
    from pipeline.engines import engine_names

    expected = "[" + "|".join(["auto", *engine_names()]) + "]"
    for command in ("render", "cast", "regress", "farm"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0 and f"--engine {expected}" in out, (command, out)


def test_no_telemetry_for_our_processes(capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    run(["parse", "--help"], capsys)
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and os.environ["DO_NOT_TRACK"] == "1"


def test_qwen3_without_models_is_one_clear_line(tmp_path, capsys, monkeypatch, sample_script):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, _, err = run(["render", str(sample_script), "-o", str(tmp_path / "out"), "--engine", "qwen3"], capsys)
    assert code == 2 and "is not on this machine" in err and "--engine preview" in err
    assert "Traceback" not in err and "Error:" in err


def test_qwen3_without_models_and_no_hub_answer_fails_before_prefect(tmp_path, capsys, monkeypatch, sample_script):
    """Online in name but the hub does not answer (no network, a firewall): the same one line, from the preflight
    (one HEAD request), not after starting Prefect and the model download's retries."""
    from pipeline.engines import select

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    asked = []
    monkeypatch.setattr(select, "_hub_reachable", lambda repo, timeout=1.0: asked.append(repo) or False)
    code, _, err = run(["render", str(sample_script), "-o", str(tmp_path / "out"), "--engine", "qwen3"], capsys)
    assert code == 2 and "does not answer" in err and "huggingface-cli download" in err and asked
    assert not (tmp_path / "out").exists()  # refused before the flow made its output folder


def test_raw_hub_error_only_under_verbose(tmp_path, capsys, monkeypatch, sample_script):
    import huggingface_hub

    from pipeline import mlx_runtime

    def boom(*a, **k):
        raise RuntimeError("HTTP 404 raw hub text")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", boom)
    monkeypatch.setattr(mlx_runtime, "_offline", lambda: False)
    import mlx_audio.utils

    monkeypatch.setattr(mlx_audio.utils, "get_model_path", boom)
    with pytest.raises(ModelError) as info:
        mlx_runtime.resolve_model("someone/missing-model", "models.base_final")
    assert "raw hub text" not in str(info.value) and "raw hub text" in info.value.detail

    import flows.cli.preflight as pf

    def failing(*a, **k):
        raise info.value

    monkeypatch.setattr(pf, "preflight", failing)
    argv = ["render", str(sample_script), "-o", str(tmp_path / "out")]
    code, _, err = run(argv, capsys)
    assert code == 2 and "raw hub text" not in err and "run with -v" in err
    code, _, err = run(argv + ["-v"], capsys)
    assert code == 2 and "Details: RuntimeError: HTTP 404 raw hub text" in err


def test_cast_table_fits_80_columns_and_wraps_on_words():
    from rich.console import Console

    from flows.cli.cast import cast_table

    description = ("A weathered, stubborn old lighthouse keeper in her seventies with a dry wit and a low, gravelly "
                   "voice that carries over wind; unhurried, precise, warmly sardonic with family.")
    rows = [{"name": "MARGARET HALE-MCALLISTER", "gender": "female", "age_range": [70, 79], "description": description,
             "pick_reason": "most distinct: cosine distance 0.41 to the nearest cast voice", "audition_index": 2,
             "lock_path": "/h/locks/MARGARET/abc.safetensors"}]
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(cast_table(rows, "sample.fountain"))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = re.findall(r"[A-Za-z][\w,;.'’-]*", text)
    for word in description.split():
        assert word.strip(",;.") in " ".join(cells), word  # never cut in two
    assert "MARGARET" in text and "female" in text and "70–79" in text


# ---------------------------------------------------------------------------------------------- one truth


def test_plain_title():
    from pipeline.fountain import plain_title

    assert plain_title("**The _Last_ Night**") == "The Last Night"
    assert plain_title("*Rain*\n   **Again**") == "Rain Again"
    assert plain_title(None) is None


@pytest.mark.usefixtures("prefect_harness")
def test_report_tells_what_the_console_told(tmp_path, capsys):
    script = tmp_path / "truth.fountain"
    script.write_text("Title: **The _Last_ Night**\n\nINT. ROOM - NIGHT\n\nMARGARET\nStill here.\n\n"
                      "TOMAS\nThen we go.\n")
    out = tmp_path / "out"
    code, stdout, err = run(["render", str(script), "-o", str(out), "--engine", "auto"], capsys)
    assert code == 0, err
    report = json.loads((out / "render-report.json").read_text())
    console_reason = re.search(r"Engine: \w+ — (.*)", stdout).group(1)
    assert report["engine"]["reason"] == console_reason and console_reason.startswith("auto:")
    wall = float(re.search(r"wall time ([\d.]+) s", stdout).group(1))
    assert f"{report['wall_seconds']:.1f}" == f"{wall:.1f}"
    assert report["flow_seconds"] is not None and report["flow_seconds"] <= report["wall_seconds"]
    assert report["title"] == "The Last Night"
    master = out / "the-last-night.wav"
    data = master.read_bytes()
    assert b"INAM" in data and b"The Last Night\0" in data and b"**" not in data[data.index(b"INAM"):]
    cues = json.loads((out / "the-last-night.cues.json").read_text())
    assert cues["title"] == "The Last Night"


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_format_flags_choose_the_masters(tmp_path, capsys, fake, sample_script):
    out = tmp_path / "out"
    code, stdout, err = run(["render", str(sample_script), "-o", str(out), "--engine", "fake", "--format", "mp3",
                             "--format", "flac"], capsys)
    assert code == 0, err
    report = json.loads((out / "render-report.json").read_text())
    masters = {k: v for k, v in report["outputs"].items() if k.startswith("master_")}
    assert set(masters) == {"master_mp3", "master_flac"} and all(os.path.getsize(p) > 1000 for p in masters.values())
    assert "master_mp3" in stdout

    only = tmp_path / "only"
    code, _, err = run(["render", str(sample_script), "-o", str(only), "--engine", "fake", "--format", "m4b"], capsys)
    assert code == 0, err
    report = json.loads((only / "render-report.json").read_text())
    assert [k for k in report["outputs"] if k.startswith("master_")] == ["master_m4b"]
    assert not list(only.glob("*.wav")) and list(only.glob("*.m4b"))  # the PCM source is not left behind
