"""The audio-regression flow and `readthrough regress`: CI's own check of the sample script on tiny Qwen3-TTS
checkpoints against the goldens committed in data/golden/sample/, plus update/compare/fail paths."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flows.cli import main
from pipeline.regression.compare import RegressionFailed
from pipeline.regression.golden import GOLDEN_FILE, load_golden

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "data" / "golden" / "sample"


@pytest.fixture(autouse=True)
def _prefect_logs_outlive_capsys():
    """Prefect (re)configures its console log handler while a flow runs, binding it to the sys.stderr of that
    moment — capsys's buffer here, closed after the test, so every later Prefect log line would raise "I/O
    operation on closed file". Rebind it once capsys has restored the real streams."""
    yield
    from prefect.logging.configuration import setup_logging

    setup_logging(incremental=False)


def regress(*args) -> int:
    """Run `readthrough regress ARGS`; the exit code (0 when it returns normally)."""
    try:
        main(["regress", *map(str, args)])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def report_of(out: Path) -> dict:
    return json.loads((out / "regression-report.json").read_text())


@pytest.fixture
def in_models_dir(tiny_models) -> str:
    """The tiny checkpoints' folder. The qwen3 engine identifies a local model by its content, not its path
    (pipeline.engines.qwen3.model_identity), so line keys and seeds are the same wherever the folder lies."""
    return str(tiny_models)


@pytest.mark.tiny
def test_ci_sample_script_matches_committed_goldens(prefect_harness, in_models_dir, sample_script, tmp_path, capsys):
    """What CI runs: the sample on tiny random Qwen3-TTS weights, against data/golden/sample/. Bit-identical samples
    are reported (expected on the machine kind that wrote the goldens) but only the tolerances must hold."""
    out, junit = tmp_path / "out", tmp_path / "reports" / "audio.xml"
    code = regress(sample_script, "--engine", "qwen3", "--models", in_models_dir, "-o", out, "--junit", junit,
                   "--golden", COMMITTED)
    printed = capsys.readouterr().out
    report = report_of(out)
    assert code == 0, printed
    assert report["ok"] and report["counts"]["changed"] == report["counts"]["missing"] == report["counts"]["new"] == 0
    assert len(report["lines"]) == len(load_golden(COMMITTED).lines)
    print(f"exact lines: {report['exact_lines']}/{len(report['lines'])}")  # shown with -s: determinism evidence
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) >= len(report["lines"])
    assert "PASSED" in printed

    # A pause setting changed: timing regressions only; the speakers are untouched; exit code 1.
    settings = tmp_path / "slow-pauses.toml"
    settings.write_text("[pauses]\nsame_speaker = 0.75\n")
    code = regress(sample_script, "--engine", "qwen3", "--models", in_models_dir, "-o", tmp_path / "out2",
                   "--settings", settings, "--golden", COMMITTED)
    report = report_of(tmp_path / "out2")
    assert code == 1 and not report["ok"]
    failed = [v for v in report["lines"] if v["status"] == "changed"]
    assert failed and all(v["reasons"] and all(r.startswith("timing") for r in v["reasons"]) for v in failed)
    assert all(v["deltas"]["timing"] == pytest.approx(0.5, abs=0.002) for v in failed)
    assert report["speakers"] and all(s["ok"] for s in report["speakers"])


def test_missing_goldens_fail_fast_and_say_how_to_create_them(prefect_harness, sample_script, tmp_path, capsys):
    out = tmp_path / "out"
    code = regress(sample_script, "--engine", "instant", "--golden", tmp_path / "none", "-o", out)
    assert code == 2
    assert "--update" in capsys.readouterr().err
    assert not (out / "render-report.json").exists()  # nothing rendered: the goldens are checked first


def test_update_compare_and_an_edited_line(prefect_harness, sample_script, tmp_path, capsys):
    """Goldens default to golden/<stem>/ beside the script; an edited line is the only line flagged."""
    script = tmp_path / "scripts" / "lighthouse.fountain"
    script.parent.mkdir()
    shutil.copy(sample_script, script)
    assert regress(script, "--engine", "instant", "-o", tmp_path / "a", "--update") == 0
    golden = tmp_path / "scripts" / "golden" / "lighthouse"
    assert (golden / GOLDEN_FILE).is_file() and "goldens created" in capsys.readouterr().out

    assert regress(script, "--engine", "instant", "-o", tmp_path / "b") == 0
    report = report_of(tmp_path / "b")
    assert report["ok"] and report["exact"] and report["counts"]["same"] == len(report["lines"])

    script.write_text(script.read_text().replace("You came to watch me pack.", "You came to watch me leave."))
    from flows.regress import regression_flow

    state = regression_flow(str(script), str(tmp_path / "c"), engine="instant", return_state=True)
    assert state.is_failed()
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, RegressionFailed) and "s2/MARGARET/1" in str(failure)
    changed = [v for v in failure.report["lines"] if v["status"] != "same"]
    assert [v["id"] for v in changed] == ["s2/MARGARET/1"]
    assert changed[0]["reasons"][0].startswith("text changed") and changed[0]["key_changed"]
    md = (tmp_path / "c" / "regression.md").read_text()
    assert "FAILED" in md and "You came to watch me leave." in md
    assert latest_artifact("audio-regression-lighthouse", state.state_details.flow_run_id) == md

    capsys.readouterr()
    assert regress(script, "--engine", "instant", "-o", tmp_path / "d", "--update") == 0  # accept the edit
    printed = capsys.readouterr().out
    assert "goldens updated" in printed and "`s2/MARGARET/1`" in printed and "FAILED" not in printed
    assert "You came to watch me leave." in {line.text for line in load_golden(golden).lines}


def latest_artifact(key: str, flow_run_id) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return found[0].data if found else None


def test_a_failed_render_is_reported_not_compared(prefect_harness, sample_script, tmp_path, monkeypatch, capsys):
    from fakes import install_fake_engine

    from flows.tasks import clear_engines

    clear_engines()
    engine = install_fake_engine()
    try:
        golden, junit = tmp_path / "golden", tmp_path / "junit.xml"
        assert regress(sample_script, "--engine", "fake", "-o", tmp_path / "a", "--golden", golden, "--update") == 0
        monkeypatch.setenv("READTHROUGH_HOME", str(tmp_path / "fresh-home"))  # nothing cached: every line renders
        engine.fail_text("watch me pack", "injected failure")
        code = regress(sample_script, "--engine", "fake", "-o", tmp_path / "b", "--golden", golden, "--junit", junit)
    finally:
        clear_engines()
    assert code == 1
    assert "nothing was compared" in capsys.readouterr().err
    error = ET.parse(junit).getroot().find(".//testcase[@name='render']/error")
    assert error is not None and "injected failure" in error.text and "watch me pack" in error.text
    assert not (tmp_path / "b" / "regression-report.json").exists()


def test_changing_one_voice_seed_flags_that_characters_lines(prefect_harness, sample_script, tmp_path):
    """Picks are pinned (`audition = 0`): otherwise a new voice for TOMAS may rightly change which audition keeps
    a later character most distinct from him."""
    pinned = "".join(f"[characters.{name}]\naudition = 0\n" for name in ("MARGARET", "TOMAS", "JUNE", "OTTO"))
    cast = tmp_path / "cast.toml"
    cast.write_text(pinned)
    golden = tmp_path / "golden"
    assert regress(sample_script, "--engine", "instant", "-o", tmp_path / "a", "--golden", golden, "--update",
                   "--cast", cast) == 0
    cast.write_text(pinned.replace("[characters.TOMAS]\n", "[characters.TOMAS]\nseed = 987\n"))
    code = regress(sample_script, "--engine", "instant", "-o", tmp_path / "b", "--golden", golden, "--cast", cast)
    report = report_of(tmp_path / "b")
    assert code == 1
    flagged = {v["id"] for v in report["lines"] if v["status"] != "same"}
    assert flagged == {v["id"] for v in report["lines"] if v["character"] == "TOMAS"} and len(flagged) == 3
    assert all(v["key_changed"] for v in report["lines"] if v["id"] in flagged)
