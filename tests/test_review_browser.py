"""The review pages in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python API; no browser
is ever downloaded): every <audio> resolves to an existing file whose duration the browser agrees with, clicking a
line seeks its scene player to the cue's start, failed lines show with their reason, script text stays text, and the
page asks for nothing but file:// URLs. Also `cast --pick` end to end: pick audition 2, render again, the lock came
from audition 2 and the cast file kept its comment and unrelated key.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import soundfile as sf

from flows.cli import main

from helpers import render_with_report as render

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def browser():
    """A headless Chromium for one test. Not module-scoped on purpose: while Playwright's sync API is live it keeps
    its asyncio loop marked running on the main thread, and Prefect's sync/async dispatch (`State.result()` and
    friends) then hands sync code a coroutine, so a CLI call in a later test of this module would see an
    async context no shell ever has (`'coroutine' object is not subscriptable` in `cast`)."""
    if not CHROMIUM.is_file():
        pytest.skip("no Chromium at /usr/bin/chromium: install Debian's package (apt-get install chromium); "
                    ".ci/run does")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is absent: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Loaded:
    """A page opened from a file:// URL with every request recorded; anything but file:// is aborted."""

    def __init__(self, browser, path: Path):
        self.path = path
        # bypass_csp: the page forbids eval (script-src 'unsafe-inline' only); the test's own polling predicates
        # (wait_for_function) are evaluated as strings, which that policy would refuse.
        self.page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route("**/*", self._route)
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function(
            "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)",
            timeout=30_000)

    def _route(self, route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def audio(self) -> list[dict]:
        return self.page.evaluate("""Array.from(document.querySelectorAll('audio')).map(a => (
            {src: a.getAttribute('src'), url: a.currentSrc, duration: a.duration, error: a.error && a.error.code}))""")

    def close(self):
        self.page.close()


def file_seconds(url: str) -> float:
    info = sf.info(unquote(urlparse(url).path))
    return info.frames / info.samplerate


def check_audio_and_network(loaded: Loaded, expect_players: int) -> None:
    players = loaded.audio()
    assert len(players) >= expect_players
    for a in players:
        assert not a["src"].startswith(("/", "file:", "http")), f"not a relative link: {a['src']}"
        assert a["error"] is None, a
        path = Path(unquote(urlparse(a["url"]).path))
        assert path.is_file(), a
        assert a["duration"] == pytest.approx(file_seconds(a["url"]), rel=0.01), a
    assert loaded.requests and all(u.startswith("file://") for u in loaded.requests), loaded.requests
    assert loaded.foreign == [] and loaded.dialogs == []


def click_seeks(loaded: Loaded, n: int) -> None:
    """Click the n-th seekable line; its scene player must seek to exactly the line's start."""
    page = loaded.page
    line = page.locator("li.line[data-start]").nth(n)
    player, start = line.get_attribute("data-player"), float(line.get_attribute("data-start"))
    page.evaluate("""id => { const a = document.getElementById(id); window.__seeks = [];
        a.addEventListener('seeking', () => window.__seeks.push(a.currentTime)); }""", player)
    line.click()
    page.wait_for_function("window.__seeks.length > 0", timeout=10_000)
    seeks = page.evaluate("window.__seeks")
    assert seeks[0] == pytest.approx(start, abs=0.002)
    page.wait_for_timeout(200)
    assert page.evaluate(f"document.getElementById('{player}').currentTime") >= start


@pytest.mark.usefixtures("prefect_harness")
def test_sample_page_failed_then_complete(tmp_path, script, fake, browser):
    out = tmp_path / "out"
    fake.fail_text("Still burning", "runaway: 31.0 s for 4 words")
    state, report = render(script, out, "fake")
    assert state.is_failed() and report["counts"]["failed"] == 1
    loaded = Loaded(browser, out / "index.html")
    failed = loaded.page.locator("li.line.failed")
    assert failed.count() == 1 and failed.first.is_visible()
    assert "Still burning" in failed.inner_text() and "runaway: 31.0 s for 4 words" in failed.inner_text()
    assert loaded.page.locator("#scene-3 audio").count() == 0  # a failed scene has no file to play
    check_audio_and_network(loaded, expect_players=3 * 4 + 3)
    loaded.close()

    fake.clear_failures()
    state, report = render(script, out, "fake")
    assert state.is_completed()
    loaded = Loaded(browser, out / "index.html")
    assert loaded.page.locator("li.line.failed").count() == 0
    assert loaded.page.locator("audio.scene-player").count() == 4
    assert loaded.page.locator("li.line[data-start]").count() == 18 + 11  # dialogue, and the narrator's lines
    assert loaded.page.locator("svg.wave").count() == 4
    check_audio_and_network(loaded, expect_players=3 * 4 + 4)
    click_seeks(loaded, 5)
    click_seeks(loaded, 17)
    text = loaded.page.inner_text("body")
    assert "readthrough render" in text and "-16.0 LUFS" in text and "Forty-one years" in text
    loaded.page.screenshot(path=str(tmp_path / "sample-review.png"), full_page=True)
    assert (tmp_path / "sample-review.png").stat().st_size > 10_000
    loaded.close()


HOSTILE = """Title: <b>Bold</b> & "quoted"

INT. <SCRIPT>ALERT(1)</SCRIPT> ROOM - DAY

<SCRIPT>
<script>window.pwned = 1; alert("pwned")</script>

BOB
<img src=x onerror="window.pwned = 2"> & friends
"""


@pytest.mark.usefixtures("prefect_harness")
def test_script_text_renders_as_text(tmp_path, browser):
    script = tmp_path / "hostile.fountain"
    script.write_text(HOSTILE, encoding="utf-8")
    out = tmp_path / "out"
    state, report = render(script, out, "instant")
    assert state.is_completed(), state.message
    loaded = Loaded(browser, out / "index.html")
    page = loaded.page
    assert page.evaluate("window.pwned") is None and loaded.dialogs == []
    assert page.locator("img").count() == 0
    lines = page.locator("li.line").all_inner_texts()
    assert any('<script>window.pwned = 1; alert("pwned")</script>' in t for t in lines), lines
    assert any('<img src=x onerror="window.pwned = 2"> & friends' in t for t in lines), lines
    assert "<SCRIPT>ALERT(1)</SCRIPT>" in page.inner_text("#scenes + section h3")
    assert page.locator("section.character h3").all_inner_texts()[0] == "<SCRIPT>"
    assert page.title().startswith("<b>Bold</b> & \"quoted\"")
    check_audio_and_network(loaded, expect_players=1)
    loaded.close()


def cli(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(RuntimeError):  # as in a shell, no event loop is running (see the `browser` fixture)
        asyncio.get_running_loop()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("prefect_harness")
def test_pick_round_trip(tmp_path, script, capsys, monkeypatch):
    import webbrowser

    out = tmp_path / "out"
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail(f"opened {url} without a desktop"))
    code, stdout, err = cli(["render", script, "-o", out, "--engine", "instant", "--open"], capsys)
    assert code == 0, err
    assert f"Review page: {out / 'index.html'}" in stdout and "--open: no desktop" in stdout
    before = {c["name"]: c for c in json.loads((out / "cast.json").read_text())["characters"]}
    assert before["TOMAS"]["chosen"] != 2  # so the pick below changes something

    cast_file = script.with_name("sample.cast.toml")
    cast_file.write_text("# lighthouse cast: keep this comment\n[characters.TOMAS]\nseed = 1234  # unrelated\n"
                         "\n[extras]\npool = 2\n", encoding="utf-8")
    code, stdout, err = cli(["cast", script, "--pick", "TOMAS=2", "--engine", "instant"], capsys)
    assert code == 0, err
    assert f"Picked audition 2 for TOMAS in {cast_file}" in stdout
    text = cast_file.read_text()
    assert "# lighthouse cast: keep this comment" in text and "seed = 1234  # unrelated" in text
    assert "pool = 2" in text and "audition = 2" in text

    code, stdout, err = cli(["render", script, "-o", out, "--engine", "instant"], capsys)
    assert code == 0, err
    assert f"Cast file: {cast_file}" in stdout
    after = {c["name"]: c for c in json.loads((out / "cast.json").read_text())["characters"]}
    tomas = after["TOMAS"]
    assert tomas["chosen"] == 2 and "pinned" in tomas["reason"].lower()
    assert Path(tomas["auditions"][2]["path"]).name == "audition-2.wav"
    report = json.loads((out / "render-report.json").read_text())
    assert report["cast"]["TOMAS"]["lock_digest"] == tomas["lock_digest"] != before["TOMAS"]["lock_digest"]
    assert report["command"][:2] == ["readthrough", "render"] and report["command"][-2:] == ["--cast", str(cast_file)]
    page = (out / "index.html").read_text()
    assert "--pick TOMAS=2" in page

    # the page's rerun command runs as printed: everything is reused
    code, stdout, err = cli(report["command"][1:], capsys)
    assert code == 0 and "Rendered 0, reused 30, failed 0 of 30 lines" in stdout, err


@pytest.mark.usefixtures("prefect_harness")
def test_bad_picks_list_characters_and_auditions(tmp_path, script, capsys):
    code, _, err = cli(["cast", script, "--pick", "THOMAS=1", "--engine", "instant"], capsys)
    assert code != 0 and "no speaking character 'THOMAS'" in err and "Available: JUNE, MARGARET, OTTO, TOMAS" in err
    code, _, err = cli(["cast", script, "--pick", "TOMAS=3", "--engine", "instant"], capsys)
    assert code != 0 and "no audition 3" in err and "0 … 2" in err
    assert not script.with_name("sample.cast.toml").exists()  # nothing written on bad input


@pytest.mark.usefixtures("prefect_harness")
def test_regression_page(tmp_path, sample_script, browser):
    from flows.regress import regression_flow

    script = tmp_path / "lighthouse.fountain"
    shutil.copy(sample_script, script)
    state = regression_flow(str(script), str(tmp_path / "a"), engine="instant", update=True, speaker=False,
                            return_state=True)
    assert state.is_completed(), state.message
    script.write_text(script.read_text().replace("You came to watch me pack.", "You came to watch me leave."))
    state = regression_flow(str(script), str(tmp_path / "b"), engine="instant", speaker=False, return_state=True)
    assert state.is_failed()
    loaded = Loaded(browser, tmp_path / "b" / "regression.html")
    page = loaded.page
    rows = page.locator("tr.verdict[data-status]")
    assert rows.count() == 18 + 11  # dialogue, and the narrator's lines
    changed = page.locator("tr.verdict[data-status=changed]")
    assert changed.count() == 1 and "s2/MARGARET/1" in changed.inner_text()
    assert "text changed" in changed.inner_text()
    assert changed.locator("audio").count() == 2  # the golden take (still in the line store) and the new one
    assert page.locator("tr.verdict[data-status=same]").count() == 17 + 11
    check_audio_and_network(loaded, expect_players=18 + 11)
    loaded.close()
