"""[delivery] instruct: the line's instruct prefixed to the Base clone prompt (tiny checkpoints, real mlx-audio)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.config import load_settings
from pipeline.engines import create_engine, qwen3
from pipeline.engines.base import RenderJob

pytestmark = pytest.mark.tiny

SAMPLE = "The quick brown fox jumps over the lazy dog."


def _settings(mode: str):
    return load_settings(overrides={"render.batch_size": 4, "render.max_retakes": 2, "delivery.mode": mode,
                                    "narration.mode": "none"})  # dialogue only: the lock given is MARGARET's


@pytest.fixture(scope="module")
def engines(tiny_models):
    return {mode: create_engine("qwen3", _settings(mode), tiny_models) for mode in ("off", "instruct")}


@pytest.fixture(scope="module")
def lock(engines):
    engine = engines["off"]
    audition = engine.design("A gravelly old sailor", SAMPLE, [11], "en")[0]
    return engine.lock(audition, SAMPLE, "en", name="Sailor", description="A gravelly old sailor", seed=11)


def _sha(outcome) -> str:
    assert outcome.audio is not None, outcome.error
    return hashlib.sha256(np.ascontiguousarray(outcome.audio.samples).tobytes()).hexdigest()


def test_instruct_makes_the_prompt_longer_by_its_turn(engines, lock):
    engine = engines["instruct"]
    text = "Get out of my lighthouse."
    plain = engine.clone_prompt_length(lock, text)
    shouted = engine.clone_prompt_length(lock, text, "Shout.")
    turn = qwen3.on_mlx_thread(
        lambda: len(engine.model("base").tokenizer.encode("<|im_start|>user\nShout.<|im_end|>\n")))
    assert shouted == plain + turn and turn > 3


def test_a_mixed_batch_renders_and_the_instruct_changes_its_line(engines, lock):
    """One engine call holding lines with and without an instruct: every line renders, the instructed line differs
    from the same line, seed and batch without delivery (off), its plain neighbours do not; the instruct alone
    changes a lone line."""
    jobs = [RenderJob(key="a", text="Hello there.", seed=700),
            RenderJob(key="b", text="Get out of my lighthouse.", seed=701, instruct="Shout."),
            RenderJob(key="c", text="We sail at dawn.", seed=702)]
    off, on = engines["off"], engines["instruct"]
    with_off = off.render(lock, jobs)
    with_on = on.render(lock, jobs)
    alone_plain = on.render(lock, [RenderJob(key="b0", text=jobs[1].text, seed=701)])
    alone_instr = on.render(lock, [jobs[1]])
    alone_off = off.render(lock, [jobs[1]])
    assert all(o.ok for o in with_off + with_on), [o.error for o in with_off + with_on]
    assert [o.key for o in with_on] == ["a", "b", "c"]
    # each line samples its own stream: the plain neighbours of an instructed line are unchanged (sha256)
    assert [_sha(o) for o in (with_on[0], with_on[2])] == [_sha(o) for o in (with_off[0], with_off[2])]
    assert _sha(with_on[1]) != _sha(with_off[1])
    assert _sha(alone_instr[0]) != _sha(alone_plain[0])
    assert _sha(alone_off[0]) == _sha(alone_plain[0])  # delivery off: a clone voice does not hear the instruct


SCRIPT = """INT. LAMP ROOM - NIGHT

MARGARET
Forty-one years I have kept this light.

MARGARET
(shouting)
Get out of my lighthouse!

MARGARET
The boat is late again.

MARGARET
(whispering)
Do you hear that?

MARGARET
Go to bed, Tomas.
"""


def _render_store(engine, lock, settings, root):
    from pipeline.fountain import parse_fountain
    from pipeline.render import plan_line_jobs, render_missing
    from pipeline.store import LineStore

    sp = parse_fountain(SCRIPT)
    digest = lock.digest()
    jobs = plan_line_jobs(sp, {"MARGARET": digest}, engine.info().identity(), settings)
    store = LineStore(root)
    summary = render_missing(engine, store, jobs, {digest: lock}, batch_size=settings.render.batch_size,
                             language=settings.render.language)
    assert summary.ok, summary.failed
    return jobs, {j.key: hashlib.sha256(store.get(j.key).samples.tobytes()).hexdigest() for j in jobs}


def test_plain_lines_are_bit_identical_to_delivery_off_through_render(engines, lock, tmp_path):
    """Through the planner and render_missing: lines without an instruct have the same keys and the same audio
    (sha256 of the stored samples) with delivery off and instruct; lines with one get new keys and new audio."""
    off_jobs, off = _render_store(engines["off"], lock, _settings("off"), tmp_path / "off")
    on_jobs, on = _render_store(engines["instruct"], lock, _settings("instruct"), tmp_path / "on")
    plain = [j.key for j in off_jobs if j.instruct is None]
    assert len(plain) == 3
    assert {k: on[k] for k in plain} == {k: off[k] for k in plain}
    directed_off = [j for j in off_jobs if j.instruct]
    directed_on = [j for j in on_jobs if j.instruct]
    assert [j.delivery for j in directed_on] == ["shouting", "whispering"]
    assert all(a.key != b.key for a, b in zip(directed_off, directed_on))
    assert all(off[a.key] != on[b.key] for a, b in zip(directed_off, directed_on))
