"""Ctrl-C on a real `readthrough render` subprocess: SIGINT to its process group (as a terminal sends it), then
exit 130 within seconds, a report with status "interrupted", one line saying how to resume, no traceback, no
API-logging spam, no server left behind; the rerun resumes and completes. The render runs as ONE chunk holding every
line, so the stop has to reach inside the engine session (not wait for the chunk to end). A second Ctrl-C quits
at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.testing.scripts import SPOKEN_PER_SCENE, long_script

pytestmark = [pytest.mark.server, pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")]

SCENES = 12  # 8 spoken lines each (6 dialogue, the narrator's heading and action): 96 lines in one chunk


def _env(home: Path) -> dict:
    env = {**os.environ, "READTHROUGH_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)
    return env


def _settings(home: Path) -> Path:
    """One render chunk for the whole script: Ctrl-C must stop inside it."""
    path = home.parent / "one-chunk.toml"
    path.write_text("[render]\nchunk_lines = 500\n")
    return path


def _render(script, out, home) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows", "render", str(script), "-o", str(out),
                             "--engine", "preview", "--settings", str(_settings(home))], env=_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _server_children(pid: int) -> list[int]:
    """Our Prefect servers started for the command `pid` (they name it: `--parent PID`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"flows.server" in args and f"{pid}".encode() in args and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _stored(home: Path) -> int:
    lines = home / "lines"
    return sum(1 for _ in lines.rglob("*.wav")) if lines.is_dir() else 0


def _started_rendering(proc: subprocess.Popen, home: Path, lines: int = 2) -> None:
    """Wait until the render has stored `lines` lines (it is inside its one chunk)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and _stored(home) < lines:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]


def test_ctrl_c_stops_cleanly_and_rerun_resumes(tmp_path):
    script = long_script(tmp_path / "night.fountain", SCENES)
    out, home = tmp_path / "out", tmp_path / "home"
    total = SCENES * SPOKEN_PER_SCENE
    proc = _render(script, out, home)
    _started_rendering(proc, home)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, output
    assert took < 10, f"took {took:.1f} s to exit"
    assert "Traceback" not in output and "Error logging to API" not in output and "ConnectError" not in output
    assert output.count("Run the same command again to resume") == 1, output
    report = json.loads((out / "render-report.json").read_text())
    assert report["status"] == "interrupted"
    kept = _stored(home)
    assert 2 <= kept < total and report["counts"]["rendered"] == kept  # stopped inside the chunk, lines kept
    assert any(s["status"] == "pending" for s in report["scenes"])
    time.sleep(0.5)
    assert _server_children(proc.pid) == []  # our Prefect server went with us

    rerun = subprocess.run([sys.executable, "-m", "flows", "render", str(script), "-o", str(out), "--engine",
                            "preview", "--settings", str(_settings(home))], env=_env(home), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    report = json.loads((out / "render-report.json").read_text())
    assert report["status"] == "completed" and report["counts"]["reused"] == kept  # resumed from the line store
    assert report["counts"]["lines"] == total and report["counts"]["rendered"] == total - kept
    assert list((home / "renders").glob("*.json"))  # `store prune` knows this report names its locks

    # nothing changed: answered from the report, no Prefect, the same outputs and report
    again = subprocess.run([sys.executable, "-m", "flows", "render", str(script), "-o", str(out), "--engine",
                            "preview", "--settings", str(_settings(home))], env=_env(home), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "Prefect not started" in again.stdout, again.stdout + again.stderr
    replayed = json.loads((out / "render-report.json").read_text())
    assert replayed["replayed"] and replayed["counts"] == {"lines": total, "rendered": 0, "reused": total,
                                                           "failed": 0}
    assert replayed["outputs"] == report["outputs"] and all(s["cached"] for s in replayed["scenes"])
    wall = float(re.search(r"wall time ([\d.]+) s", again.stdout).group(1))
    assert f"{replayed['wall_seconds']:.1f}" == f"{wall:.1f}"

    # an edited line runs the flow again, which re-renders exactly that line
    script.write_text(script.read_text().replace("The wind rises.\n\nMARGARET\nThe tide is turning and the lamp is "
                                                 "still dark. Scene 1.", "The wind rises.\n\nMARGARET\nThe tide "
                                                 "has turned. Scene 1."))
    edited = subprocess.run([sys.executable, "-m", "flows", "render", str(script), "-o", str(out), "--engine",
                             "preview", "--settings", str(_settings(home))], env=_env(home), capture_output=True,
                            text=True, timeout=600)
    assert edited.returncode == 0 and "Prefect not started" not in edited.stdout, edited.stdout + edited.stderr
    report = json.loads((out / "render-report.json").read_text())
    assert report["counts"]["rendered"] == 1 and not report["replayed"]


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    home = tmp_path / "home"
    proc = _render(long_script(tmp_path / "night.fountain", SCENES), tmp_path / "out", home)
    _started_rendering(proc, home, lines=1)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.1)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 3, output
    assert "Stopped at once. Run the same command again to resume." in output and "Traceback" not in output
    time.sleep(0.5)
    assert _server_children(proc.pid) == []


def test_server_dies_when_only_the_main_process_is_killed(tmp_path):
    """kill -9 of the command alone (as the OOM killer does) must not leave our Prefect server running."""
    script = long_script(tmp_path / "night.fountain", scenes=2)
    proc = _render(script, tmp_path / "out", tmp_path / "home")
    deadline = time.monotonic() + 240
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None and not children:
        children = _server_children(proc.pid)
        time.sleep(0.2)
    assert children, proc.communicate()[0] if proc.poll() is not None else "no server was started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(")")[-1].split()[0] == "Z")
