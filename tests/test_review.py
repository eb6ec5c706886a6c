"""The review page and `--pick` without a browser or Prefect: escaping, pure page generation, waveforms, picking
into a cast file (comments and other keys kept), bad picks, and `--open` being a no-op without a desktop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.castpick import Pick, default_cast_file, parse_pick, pin_auditions, write_picks
from pipeline.errors import CastFileError
from pipeline.review import (
    AuditionView, CharacterView, LineView, ReviewPage, RunFacts, SceneView, pin_snippet, review_html, waveform,
)

EVIL = '<script>alert("x")</script>'


def _page(name=EVIL, text=EVIL, heading=EVIL) -> ReviewPage:
    audition = AuditionView(index=2, seed=7, text=text, href="auditions/x/audition-2.wav", chosen=True,
                            snippet=pin_snippet(name, 2), pick_command=f"readthrough cast s.fountain --pick '{name}=2'")
    character = CharacterView(name=name, gender="female", age_range=(30, 39), traits=(text,), summary=text,
                              description=text, auditions=(audition,), chosen=2, reason=text, source="designed",
                              extra_voice=None, lock_path="/l/x.safetensors", lock_digest="ab" * 32)
    scene = SceneView(label="1", heading=heading, status="done", href="scenes/scene-001.wav", duration=3.0,
                      lufs=-16.0, true_peak_db=-1.2, waveform=((-0.5, 0.5), (-0.1, 0.2)),
                      lines=(LineView(name, text, 0.25, 1.5, 12), LineView(name, text, None, None, 14, failed=text)))
    run = RunFacts(script=text, status="failed", engine={"name": "instant", "model_id": "instant-1"},
                   counts={"lines": 2, "failed": 1}, audio_seconds=3.0, wall_seconds=1.5, started="2026",
                   command=f"readthrough render '{text}' -o out")
    return ReviewPage(title=heading, run=run, cast=(character,), scenes=(scene,))


def test_script_text_is_escaped_everywhere():
    page = review_html(_page())
    # the only <script> element is the page's own, at the end
    assert page.count("<script>") == 1 and page.rstrip().endswith("</script></body></html>")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'alert("x")' not in page.split("<script>")[0]


def test_page_is_pure_and_self_contained():
    a, b = review_html(_page()), review_html(_page())
    assert a == b
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", a), "no network links"
    assert 'data-start="0.250"' in a and 'data-player="scene-player-1"' in a
    assert 'class="line failed"' in a and "<polygon" in a


def test_pin_snippet_quotes_odd_names():
    assert pin_snippet("MARGARET", 2) == "[characters.MARGARET]\naudition = 2\n"
    assert pin_snippet("MRS. O'NEIL", 0) == "[characters.\"MRS. O'NEIL\"]\naudition = 0\n"


def test_waveform_envelope_from_samples(tmp_path):
    x = np.zeros(24000, dtype=np.float32)
    x[12000:12100] = 0.8
    sf.write(tmp_path / "a.wav", x, 24000)
    peaks = waveform(tmp_path / "a.wav", points=100)
    assert 95 <= len(peaks) <= 100
    assert max(hi for _, hi in peaks) == pytest.approx(0.8, abs=1e-3)
    assert peaks[0] == (0.0, 0.0)
    assert waveform(tmp_path / "missing.wav") == ()


CAST = """# my cast — keep this comment
[characters.MARGARET]
seed = 4242   # a seed I like
summary = "keeper"

[characters.TOMAS]
audition = 0

[extras]
pool = 2
"""


def test_pin_keeps_comments_and_other_keys():
    out = pin_auditions(CAST, [Pick("MARGARET", 2), Pick("JUNE", 1), Pick("TOMAS", 1)])
    assert "# my cast — keep this comment" in out and "seed = 4242   # a seed I like" in out
    assert 'summary = "keeper"' in out and "pool = 2" in out
    import tomllib

    data = tomllib.loads(out)
    assert data["characters"]["MARGARET"] == {"seed": 4242, "summary": "keeper", "audition": 2}
    assert data["characters"]["JUNE"] == {"audition": 1}
    assert data["characters"]["TOMAS"] == {"audition": 1}


def test_pick_matches_names_like_the_parser():
    chars = ["MARGARET", "TOMAS"]
    assert parse_pick("margaret=2", chars, 3) == Pick("MARGARET", 2)
    assert parse_pick(" Tomas = 0", chars, 3) == Pick("TOMAS", 0)


def test_bad_picks_list_what_there_is():
    chars = ["MARGARET", "TOMAS", "JUNE"]
    with pytest.raises(CastFileError, match=r"no speaking character 'MARGRET'.*Did you mean 'MARGARET'.*"
                                             r"Available: JUNE, MARGARET, TOMAS"):
        parse_pick("MARGRET=1", chars, 3)
    with pytest.raises(CastFileError, match=r"no audition 5: the auditions of JUNE are 0, 1, 2"):
        parse_pick("JUNE=5", chars, 3, {"JUNE": [0, 1, 2]})
    with pytest.raises(CastFileError, match=r"no audition 3: each character gets 3 auditions, 0 … 2"):
        parse_pick("JUNE=3", chars, 3)
    with pytest.raises(CastFileError, match="expected NAME=INDEX"):
        parse_pick("JUNE", chars, 3)
    with pytest.raises(CastFileError, match="expected NAME=INDEX"):
        parse_pick("JUNE=-1", chars, 3)


def test_write_picks_validates_before_replacing(tmp_path):
    path = tmp_path / "s.cast.toml"
    path.write_text('[characters.MARGARET]\ngender = "robot"\n', encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(CastFileError, match=rf"{re.escape(str(path))}: \[characters.MARGARET\] gender"):
        write_picks(path, [Pick("MARGARET", 1)], ["MARGARET"])
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != path.name], "no temp file left behind"
    fresh = write_picks(tmp_path / "new.cast.toml", [Pick("MARGARET", 1)], ["MARGARET"])
    assert "audition = 1" in fresh.read_text()
    with pytest.raises(CastFileError, match="edits TOML cast files only"):
        write_picks(tmp_path / "c.yaml", [Pick("MARGARET", 1)], ["MARGARET"])


def test_default_cast_file_is_beside_the_script():
    assert default_cast_file("data/sample.fountain") == Path("data/sample.cast.toml")


def test_open_is_a_noop_without_a_desktop(monkeypatch, tmp_path):
    import webbrowser

    from flows.cli.browser import has_desktop, open_page

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    page = tmp_path / "index.html"
    page.write_text("<p>hi</p>")
    assert not has_desktop({}, "linux")
    assert open_page(page, {}, "linux") is False and opened == []
    assert has_desktop({"DISPLAY": ":0"}, "linux") and has_desktop({}, "darwin")
    assert open_page(page, {"WAYLAND_DISPLAY": "wayland-0"}, "linux") is True
    assert opened == [page.resolve().as_uri()]


def test_regression_page_escapes_and_shows_both_takes():
    from pipeline.regression_page import LineRow, RegressionPage, regression_page

    changed = LineRow(id="s1/BOB/1", scene=1, character=EVIL, status="changed", text=EVIL, golden_text="old <b>",
                      reasons=("text changed", "duration +0.1 s (tolerance ±0.05)"), deltas=(("duration", 0.1),),
                      golden_href="regression-audio/golden-a.wav", new_href="scenes/scene-001.wav#t=0.300,1.200",
                      identical=False)
    same = LineRow(id="s1/BOB/2", scene=1, character="BOB", status="same", text="hi", golden_text="hi", reasons=(),
                   deltas=(), golden_href="a.wav", new_href="a.wav", identical=True)
    html = regression_page(RegressionPage(script=EVIL, ok=False, counts=(("same", 1), ("changed", 1)), notes=(EVIL,),
                                          lines=(changed, same), scenes=((1, EVIL, "changed", (EVIL,)),),
                                          speakers=()))
    assert "<script>" not in html and 'alert("x")' not in html
    assert "<del>old &lt;b&gt;</del>" in html and "duration +0.1 s (tolerance ±0.05)" in html
    row = html.split('data-status="changed"')[1].split("</tr>")[0]
    assert row.count("<audio") == 2 and 'src="scenes/scene-001.wav#t=0.300,1.200"' in row
    same_row = html.split('data-status="same"')[1].split("</tr>")[0]
    assert same_row.count("<audio") == 1 and "golden = new" in same_row


def test_copying_auditions_removes_a_killed_copys_temp_file(tmp_path):
    """A render killed while the page copied an audition leaves a temp file under OUT/auditions/<character>/: the
    next copy there removes it (dead writers only), as the chaos test found."""
    import os
    import subprocess
    import sys

    from pipeline.files import TEMP_PREFIX, _host
    from types import SimpleNamespace

    from pipeline.review import _audition_hrefs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    folder = tmp_path / "out" / "auditions" / "june"
    folder.mkdir(parents=True)
    killed = folder / f"{TEMP_PREFIX}{_host()}.{dead}.audition-2.wav.8jenap82.wav"
    live = folder / f"{TEMP_PREFIX}{_host()}.{os.getpid()}.audition-1.wav.q1w2e3.wav"
    for p in (killed, live):
        p.write_bytes(b"half")
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF....WAVE")
    href = _audition_hrefs(tmp_path / "out", "JUNE", [SimpleNamespace(index=2, path=str(source))])[2]
    assert href and (tmp_path / "out" / href).read_bytes() == source.read_bytes()
    assert not killed.exists() and live.exists()

