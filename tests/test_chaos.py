"""Issue 18 "show it works": kill -9 the render's whole process group at seeded random points, rerun each time.

The final master, scene files and cue sheet are byte-identical to an uninterrupted render, no temp file of ours is
left, and every line was stored exactly once over all runs (the sum of lines rendered across runs equals the number
of lines). The preview engine at ≥ 10 points, tiny qwen3 checkpoints at ≥ 3 (tiny models say nothing about voice
quality; they exercise the real mlx-audio plumbing). Preview runs use the session's Prefect test server, so each
process starts in ~2 s instead of starting its own ephemeral server; qwen3 runs use ephemeral mode (see `_env`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.files import TEMP_PREFIX

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parent.parent


def _env(home: Path, server: bool) -> dict:
    """The session's test server (fast starts), or — for MLX engines, which hold a slot of the server's global `mlx`
    limit that a killed holder keeps until its lease expires — Prefect's ephemeral mode under `home`."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "READTHROUGH_HOME": str(home), "PYTHONPATH": str(REPO),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    if server:
        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    else:
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_HOME"] = str(home.parent / "prefect-home")
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # 2 shared cores: starts can be slow
    return env


def _command(script: Path, out: Path, engine: str, models: Path | None, settings: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "flows", "render", str(script), "-o", str(out), "--engine", engine]
    return cmd + (["--models", str(models)] if models else []) + (["--settings", str(settings)] if settings else [])


def _run(cmd, env, kill_after: float | None = None) -> tuple[int | None, float]:
    """Run `cmd` in its own process group; with `kill_after`, SIGKILL the whole group then (None: it was killed)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        proc.wait(timeout=kill_after if kill_after is not None else 600)
        code = proc.returncode
        if code != 0:
            raise AssertionError(f"render exited {code}: {proc.stderr.read().decode()[-2000:]}")
        return code, time.monotonic() - started
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - started
    finally:
        proc.stderr.close()


def _stamps(store: Path) -> dict[str, tuple]:
    """Sidecar identity per stored line: a line stored again gets a new file (atomic rename → new inode)."""
    out = {}
    for p in store.rglob("line-*.json"):
        st = p.stat()
        out[p.stem] = (st.st_ino, st.st_mtime_ns)
    return out


def _deliverables(out: Path) -> dict[str, bytes]:
    files = sorted((out / "scenes").glob("scene-*")) + sorted(out.glob("*.wav")) + sorted(out.glob("*.cues.json"))
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _temps(*roots: Path) -> list[Path]:
    return [p for r in roots for p in r.rglob(f"{TEMP_PREFIX}*")]


def _chaos(tmp_path, script, engine: str, points: int, seed: int, models: Path | None = None,
           settings: Path | None = None, latest: float = 1.0, rounds: int = 8):
    """`points` runs killed at seeded times in [1 s, `latest` × the uninterrupted render's wall time], each
    followed by a rerun. A run that finishes before its kill point ends a round (checked like every round); the
    next round starts from an empty home and output folder, so its kills land mid-render again. Returns the kills
    and the lines stored per run, round by round."""
    ref_home, ref_out = tmp_path / "ref-home", tmp_path / "ref-out"
    server = engine != "qwen3"
    _, wall = _run(_command(script, ref_out, engine, models, settings), _env(ref_home, server))  # uninterrupted
    reference = _deliverables(ref_out)
    lines = len(_stamps(ref_home / "lines"))
    assert reference and lines > 0
    rng = random.Random(seed)
    kills, per_round = 0, []
    for n in range(rounds):
        if kills >= points:
            break
        k, stored = _round(tmp_path / f"round-{n}", script, engine, models, settings, server, reference, lines,
                           [rng.uniform(1.0, latest * wall) for _ in range(points - kills)])
        kills += k
        per_round.append(stored)
    return kills, per_round


def _round(root: Path, script, engine, models, settings, server, reference, lines, kill_points):
    """Kill a render at each point in turn (stop early when one finishes first), rerun it to the end, and check:
    byte-identical deliverables, no temp file left, every line stored exactly once over all runs."""
    home, out = root / "home", root / "out"
    env = _env(home, server)
    cmd = _command(script, out, engine, models, settings)
    stored_per_run: list[int] = []
    before: dict[str, tuple] = {}
    kills = 0

    def count_stored() -> None:
        nonlocal before
        after = _stamps(home / "lines")
        stored_per_run.append(sum(1 for k, v in after.items() if before.get(k) != v))
        before = after

    for point in kill_points:
        code, _ = _run(cmd, env, kill_after=point)
        count_stored()
        kills += code is None
        if code == 0:  # it finished before the kill point: this round is over
            break
    code, _ = _run(cmd, env)
    count_stored()
    assert code == 0
    assert _deliverables(out) == reference  # byte-identical master, scenes and cue sheet
    assert _temps(out, home / "lines") == []
    assert sum(stored_per_run) == lines, f"lines stored per run {stored_per_run}, {lines} lines in the script"
    return kills, stored_per_run


def test_kill_9_at_ten_random_points_preview(tmp_path, sample_script):
    pytest.importorskip("espeakng_loader")
    kills, per_run = _chaos(tmp_path, sample_script, "preview", points=10, seed=18, latest=0.9)
    assert kills >= 10, per_run


TINY_SCRIPT = """Title: Two Keepers

INT. LAMP ROOM - NIGHT

MARGARET
Forty-one years I have kept this light.

TOM
And tonight you put it out?

EXT. GALLERY - NIGHT

MARGARET
(quietly)
Tonight the sea can find its own way.

TOM
Then I will stay with you.
"""


@pytest.mark.tiny
def test_kill_9_at_three_random_points_tiny_qwen3(tmp_path, tiny_models):
    """A two-scene script with one audition per voice keeps this under a few minutes on 2 cores."""
    script = tmp_path / "two-keepers.fountain"
    script.write_text(TINY_SCRIPT)
    settings = tmp_path / "settings.toml"
    settings.write_text("[casting]\nauditions = 1\n")
    kills, per_run = _chaos(tmp_path, script, "qwen3", points=4, seed=7, models=tiny_models, settings=settings,
                            latest=0.7)  # later runs skip what is done: keep kill points inside the render
    assert kills >= 3, per_run
