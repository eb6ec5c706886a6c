"""One-pass scene loudness (pipeline.leveller), streamed scene mixes with bounded memory, and the master metered
from the scenes' gating-block figures and copied byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from audio_fixtures import RATE, line, write_line

from pipeline import leveller
from pipeline import loudness as ld
from pipeline.assemble import MixLine, assemble_master, mix_scene
from pipeline.config import Settings
from pipeline.leveller import Leveller, normalise_array

REPO = Path(__file__).resolve().parent.parent


def settings(**overrides) -> Settings:
    return Settings().with_overrides(overrides)


def lufs(x) -> float:
    return pyloudnorm.Meter(RATE).integrated_loudness(x)


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic 'syllables' (a 120-220 Hz buzz with formant-ish partials) under a syllable envelope, with pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 120 + 100 * rng.uniform(size=n // 4800 + 1).repeat(4800)[:n]
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in (1, 2, 3, 5, 8))
    env = np.repeat(rng.uniform(0, 1, n // 3600 + 1) ** 1.5, 3600)[:n]
    env[(t % 3.0) > 2.4] = 0.0  # pauses between phrases
    return 0.05 * voice * env + rng.normal(0, 0.002, n) * (env > 0)


def noise_like(seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Heavy-tailed noise, as tiny random-weight checkpoints produce: a high crest factor that the limiter must
    handle while the target is still reached."""
    rng = np.random.default_rng(seed)
    x = 0.03 * rng.standard_t(3, (int(seconds * RATE), channels))
    return x[:, 0] if channels == 1 else x


BROADCAST = ld.LoudnessTarget.from_settings(Settings().loudness)


@pytest.mark.parametrize("make", [speech_like, noise_like], ids=["speech", "noise"])
@pytest.mark.parametrize("scale", [0.2, 1.0, 6.0])
def test_one_pass_reaches_target_under_the_ceiling(make, scale):
    x = make(20.0) * scale
    y, result = normalise_array(x, RATE, BROADCAST)
    assert abs(lufs(y) - BROADCAST.level_db) <= 0.1
    assert ld.true_peak_db(y) <= BROADCAST.ceiling_db
    assert result.report.true_peak_db >= ld.true_peak_db(y) - 1e-6  # the reported peak is an upper bound
    assert result.report.lufs == pytest.approx(lufs(y), abs=1e-4)
    assert result.plan.oversampled_chunks < result.plan.chunks  # the envelope is computed only where it matters


def test_noise_needs_the_limiter_and_still_reaches_target():
    x = noise_like(20.0, channels=2)
    y, result = normalise_array(x, RATE, BROADCAST)
    assert result.report.limited and result.plan.limiter is not None
    assert abs(lufs(y) - BROADCAST.level_db) <= 0.1
    assert ld.true_peak_db(y) <= BROADCAST.ceiling_db


def test_limiter_gain_is_smooth_and_silence_stays_silent():
    x = noise_like(12.0, seed=3)
    x[RATE : 2 * RATE] = 0.0
    y, result = normalise_array(x, RATE, BROADCAST)
    assert not y[RATE : 2 * RATE].any()
    g = result.plan.limiter
    assert g is not None and g.max() <= 1.0 and g.min() > 0.0
    assert np.max(np.abs(np.diff(g))) < 0.2  # a 5 ms ramp, not a clip


def test_acx_rms_target_in_one_pass():
    loud = Settings().loudness.model_copy(update={"preset": "acx"})
    target = ld.LoudnessTarget.from_settings(loud)
    y, _ = normalise_array(noise_like(10.0, seed=5), RATE, target)
    assert abs(ld.rms_db(y) - target.level_db) <= 0.1
    assert ld.true_peak_db(y) <= target.ceiling_db


def test_leveller_spill_file_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(leveller, "SPILL_MEMORY", 20_000)  # bytes: 2 s of audio passes it
    x = noise_like(2.0)
    with Leveller(RATE, 1, BROADCAST, spill_dir=tmp_path) as lev:
        lev.feed(x[:1000])  # in memory so far
        assert list(tmp_path.iterdir()) == []
        lev.feed(x[1000:])  # past the limit: what was in memory moves to the file, the rest follows
        assert any(p.suffix == ".f32" for p in tmp_path.iterdir())
        np.testing.assert_array_equal(lev._spill.read(0, len(x))[:, 0], x.astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_a_short_mix_stays_in_memory(tmp_path):
    x = noise_like(2.0)
    with Leveller(RATE, 1, BROADCAST, spill_dir=tmp_path) as lev:
        lev.feed(x)
        assert list(tmp_path.iterdir()) == []
        np.testing.assert_array_equal(lev._spill.read(100, 200)[:, 0], x[100:200].astype(np.float32))


def test_scene_of_tiny_model_like_lines_reaches_target(tmp_path):
    d = tmp_path / "lines"
    lines = [MixLine(f"k{i}", "ANNA" if i % 2 else "BEN", "…", write_line(d, f"k{i}", noise_like(3.0, seed=i)
                                                                          .astype(np.float32)))
             for i in range(6)]  # fmt: skip
    res = mix_scene(lines, tmp_path / "s", settings(), scene_index=0, heading=None)
    data, _ = sf.read(str(res.path))
    assert abs(lufs(data) - Settings().loudness.target_lufs) <= 0.1
    assert ld.true_peak_db(data) <= Settings().loudness.true_peak_db
    assert res.loudness.limited


def test_scenes_are_whole_gating_hops_and_carry_their_blocks(tmp_path):
    d = tmp_path / "lines"
    res = mix_scene([line(d, "a", "ANNA", 17_123, seed=1), line(d, "b", "BEN", 9_999, seed=2)], tmp_path / "s",
                    settings(), scene_index=0, heading=None)  # fmt: skip
    hop = ld.hop_frames(RATE)
    assert res.frames % hop == 0 and res.blocks.frames == res.frames and len(res.blocks.hops) == res.frames // hop
    data, _ = sf.read(str(res.path))
    assert res.blocks.integrated_lufs() == pytest.approx(lufs(data), abs=1e-3)
    assert res.blocks.true_peak_db >= ld.true_peak_db(data) - 1e-6


def _scenes(tmp_path, s, count=4):
    d = tmp_path / "lines"
    scenes = []
    for i in range(count):
        lines = [line(d, f"s{i}l{j}", "ANNA" if j % 2 else "BEN", 9_000 + 3_517 * j + 1_111 * i, seed=10 * i + j,
                      amp=0.02 * (i + 1)) for j in range(3 + i)]  # fmt: skip
        scenes.append(mix_scene(lines, tmp_path / "scenes" / f"scene-{i}", s, scene_index=i, heading=f"S{i}"))
    return scenes


def test_master_loudness_from_scene_blocks_matches_metering_the_master(tmp_path, monkeypatch):
    s = settings()
    scenes = _scenes(tmp_path, s)

    def no_reading(*a, **kw):
        raise AssertionError("the master must not re-read scene audio to meter it")

    monkeypatch.setattr("pipeline.assemble._meter_scenes", no_reading)
    master = assemble_master(scenes, tmp_path / "out", s, title="Blocks")
    data, _ = sf.read(str(master.path))
    assert abs(master.lufs - lufs(data)) <= 0.1
    assert abs(master.lufs - ld.BlockLoudness.concat([sc.blocks for sc in scenes]).integrated_lufs()) < 1e-9
    assert ld.true_peak_db(data) <= s.loudness.true_peak_db


def test_master_copies_the_scene_samples_exactly(tmp_path):
    s = settings()
    scenes = _scenes(tmp_path, s, 3)
    master = assemble_master(scenes, tmp_path / "out", s, title="Copy")
    assert master.gain_db == 0.0
    joined = np.concatenate([sf.read(str(sc.path), dtype="int32")[0] for sc in scenes])
    assert np.array_equal(sf.read(str(master.path), dtype="int32")[0], joined)
    info = sf.info(str(master.path))
    assert (info.subtype, info.frames) == ("PCM_24", master.frames)


def test_master_without_block_figures_is_metered_from_audio(tmp_path):
    from dataclasses import replace

    s = settings()
    scenes = [replace(sc, blocks=None) for sc in _scenes(tmp_path, s, 2)]  # e.g. results from an older version
    master = assemble_master(scenes, tmp_path / "out", s, title="Old")
    data, _ = sf.read(str(master.path))
    assert master.lufs == pytest.approx(lufs(data), abs=0.1)


def test_block_figures_join_exactly_across_scene_boundaries():
    rng = np.random.default_rng(9)
    hop = ld.hop_frames(RATE)
    parts = [rng.normal(0, a, n * hop) for a, n in ((0.1, 23), (0.02, 41), (0.3, 17))]
    blocks = []
    for p in parts:
        m = ld.StreamingMeter(RATE, 1)
        m.feed(p)
        blocks.append(m.blocks())
    joined = ld.BlockLoudness.concat(blocks)
    # no silence at these boundaries, so the K-filter state carried across them is all that differs (scenes end in
    # their tail pause, where it has decayed)
    assert joined.integrated_lufs() == pytest.approx(lufs(np.concatenate(parts)), abs=1e-4)
    odd = ld.StreamingMeter(RATE, 1)
    odd.feed(parts[0][:-7])
    with pytest.raises(ValueError, match="whole number"):
        ld.BlockLoudness.concat([odd.blocks(), blocks[1]])


TEN_MINUTES = """
import json, resource, sys
from pathlib import Path
import numpy as np, soundfile as sf
from pipeline.assemble import MixLine, mix_scene
from pipeline.config import Settings

work = Path(sys.argv[1])
rate = 24_000
rng = np.random.default_rng(0)
paths = []
for v in range(10):  # ten 6-second lines, reused: 100 lines of scene
    p = work / f"v{v}.wav"
    sf.write(str(p), (rng.laplace(0, 0.05, 6 * rate) * (1 + v / 5)).astype("float32"), rate, subtype="FLOAT")
    paths.append(p)
lines = [MixLine(f"k{i}", ["ANNA", "BEN", "CARA"][i % 3], f"Line {i}.", paths[i % 10]) for i in range(100)]
mix_scene(lines[:3], work / "warm", Settings(), scene_index=0, heading=None)  # imports, filters, caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
res = mix_scene(lines, work / "scene", Settings(), scene_index=1, heading=None)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"minutes": res.duration / 60, "growth_mib": after - before, "before_mib": before}))
"""


def test_ten_minute_scene_mixes_with_bounded_memory(tmp_path):
    """ru_maxrss is a high-water mark: its growth over the mix is the mix's own peak above everything before it.
    A whole 10-minute scene held in memory once as float64 is 110 MiB, so this cannot pass by holding it."""
    script = tmp_path / "ten.py"
    script.write_text(textwrap.dedent(TEN_MINUTES))
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["minutes"] >= 10.0
    assert figures["growth_mib"] < 100, figures


def test_a_verified_overshoot_is_trimmed_and_written_again(tmp_path, monkeypatch):
    """The final check is real: with the limiter disabled a hot scene passes the ceiling, the check on the written
    samples finds it, and the scene is written once more with a static trim."""
    from pipeline.leveller import Leveller

    monkeypatch.setattr(Leveller, "_limiter", lambda self, env, gain, aim: None)
    d = tmp_path / "lines"
    lines = [MixLine("hot", "ANNA", "…", write_line(d, "hot", noise_like(6.0, seed=2).astype(np.float32)))]
    res = mix_scene(lines, tmp_path / "s", settings(), scene_index=0, heading=None)
    data, _ = sf.read(str(res.path))
    assert ld.true_peak_db(data) <= Settings().loudness.true_peak_db
    assert lufs(data) < Settings().loudness.target_lufs - 0.5  # trimmed, since nothing was limited


# ---------------------------------------------------------------- cheap paths that must equal the exact ones


@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
@pytest.mark.parametrize("pauses", [{}, {"pauses.same_speaker": 0.0, "pauses.speaker_change": 0.01,
                                         "pauses.sentence": 0.0}], ids=["default-pauses", "touching-lines"])
def test_scene_energies_from_the_lines_equal_k_weighting_the_mix(tmp_path, monkeypatch, stereo, pauses):
    """The leveller is given the mix's K-weighted energy built from the lines' own K-weighted signals (× pan gains,
    pieces joined at their gap, a dual pair overlapped, off-screen gain applied): it equals K-weighting the whole
    mix, also when lines touch (no gap for the filter's ringing to die away in)."""
    d = tmp_path / "lines"
    lines = [line(d, "a", "ANNA", 17_123, seed=1),
             line(d, "p0", "BEN", 9_999, seed=2, piece=0, pieces=2), line(d, "p1", "BEN", 5_001, seed=3, piece=1,
                                                                           pieces=2),
             MixLine("c", "ANNA", "…", write_line(d, "c", noise_like(1.5, seed=3).astype(np.float32)), dual_group=1),
             MixLine("e", "BEN", "…", write_line(d, "e", noise_like(0.9, seed=4).astype(np.float32)), dual_group=1,
                     dual_side=1),
             line(d, "f", "CARA", 30_001, seed=5, effects=("offscreen",), extension="O.S.")]  # fmt: skip
    seen = {}
    original = Leveller.plan

    def plan(self):
        seen["given"] = self._given
        seen["energy"] = self._chunks.arrays()[1].copy()
        seen["mix"] = self._spill.read(0, self.frames)
        return original(self)

    monkeypatch.setattr(Leveller, "plan", plan)
    s = settings(**{"output.stereo": stereo, **pauses})
    res = mix_scene(lines, tmp_path / "s", s, scene_index=0, heading=None)
    assert seen["given"]
    with Leveller(RATE, 2 if stereo else 1, BROADCAST) as ref:
        ref.feed(seen["mix"])
        expected = ref._chunks.arrays()[1]
    # the spill holds float32 samples, the energies come from the float64 lines: agreement to float32 precision
    np.testing.assert_allclose(seen["energy"], expected, rtol=1e-5, atol=1e-9 * expected.max())
    data, _ = sf.read(str(res.path))
    assert abs(lufs(data) - Settings().loudness.target_lufs) <= 0.1
    assert ld.true_peak_db(data) <= Settings().loudness.true_peak_db
    assert res.loudness.lufs == pytest.approx(lufs(data), abs=1e-3)


def test_a_line_weighted_once_has_the_gain_normalise_line_gives():
    x = noise_like(3.0, seed=7)
    y, gain = ld.normalise_line(x, RATE, -20.0)
    y2, gain2, k = ld.normalise_line_weighted(x, RATE, -20.0)
    assert gain2 == gain and np.array_equal(y2, y)
    assert len(k) == len(x) + ld.hop_frames(RATE)
    expected = ld.KWeighting(RATE, 1).energy(y)
    np.testing.assert_allclose(np.square(k[: len(x)]), expected, rtol=1e-9, atol=1e-12 * expected.max())
    short = x[:2000]  # too short to gate: the RMS fallback, as level_db
    assert ld.normalise_line_weighted(short, RATE, -20.0)[1] == ld.normalise_line(short, RATE, -20.0)[1]


def test_given_energies_must_come_with_every_block():
    with Leveller(RATE, 1, BROADCAST) as lev:
        lev.feed(np.zeros(100))
        lev.feed(np.ones(100) * 0.1, np.full(100, 0.01))
        with pytest.raises(ValueError, match="every block"):
            lev.feed(np.ones(100) * 0.1)


@pytest.mark.parametrize("kind", ["gaussian", "alternating", "speech", "clicks"])
@pytest.mark.parametrize("channels", [1, 2])
def test_sample_bound_is_never_below_the_oversampled_envelope(kind, channels):
    """The sieve's bound (|x| and second differences) holds for any signal, harsh ones included, to the last chunk."""
    from pipeline.leveller import _chunk_maxima, _rows_bound

    rng = np.random.default_rng(3)
    n = 24_011
    x = {"gaussian": rng.standard_normal((n, channels)) * 0.3,
         "alternating": np.sign(rng.standard_normal((n, channels))) * 0.9,
         "speech": np.stack([speech_like(1.01, seed=c)[:n] * 10 for c in range(channels)], axis=1),
         "clicks": np.where(rng.uniform(size=(n, channels)) > 0.999, 0.95, 0.0)}[kind]  # fmt: skip
    chunk = leveller.chunk_frames(RATE)
    chunks = np.arange(-(-n // chunk))
    env = ld.envelope(x)
    padded = np.zeros(len(chunks) * chunk)
    padded[:n] = env
    exact = padded.reshape(-1, chunk).max(axis=1)
    read = lambda a, b: x[a:b]  # noqa: E731
    np.testing.assert_allclose(_chunk_maxima(read, n, chunk, chunks), exact, rtol=1e-12, atol=1e-15)
    assert np.all(_chunk_maxima(read, n, chunk, chunks, _rows_bound) >= exact)
    if kind == "speech":  # the point of it: tight on speech's loud chunks, where TP_BOUND would be 7 dB over
        loud = exact > 0.5 * exact.max()
        assert np.max(_chunk_maxima(read, n, chunk, chunks[loud], _rows_bound) / exact[loud]) < 1.5


def test_sieved_plan_limits_exactly_as_oversampling_everything(monkeypatch):
    """Skipping the oversampling where the bounds prove it cannot matter changes nothing: the same limiter."""
    x = noise_like(8.0, seed=11) * 3
    _, sieved = normalise_array(x, RATE, BROADCAST)
    monkeypatch.setattr(leveller, "_rows_bound", lambda rows, chunk, valid: np.full(len(rows[0]), 1e30))
    monkeypatch.setattr(leveller.Leveller, "_near", lambda self, peak: np.full(len(peak), 1e30))
    _, everything = normalise_array(x, RATE, BROADCAST)
    assert everything.plan.oversampled_chunks == everything.plan.chunks > sieved.plan.oversampled_chunks
    np.testing.assert_allclose(sieved.plan.limiter, everything.plan.limiter, rtol=1e-12)
    assert sieved.plan.gain_db == pytest.approx(everything.plan.gain_db, abs=1e-9)


@pytest.mark.parametrize("channels", [1, 2])
def test_written_scene_reader_reads_what_soundfile_reads(tmp_path, channels):
    from pipeline.assemble import _written_reader

    rng = np.random.default_rng(0)
    x = np.clip(rng.standard_normal((5000, channels)) * 0.4, -1.0, 0.999)
    x[:4] = np.array([-1.0, 0.0, 2.0**-23, -(2.0**-23)])[:, None]
    path = tmp_path / "s.wav"
    sf.write(str(path), x, RATE, subtype="PCM_24")
    stored = sf.read(str(path), dtype="float64", always_2d=True)[0]
    with _written_reader(path) as read:
        for a, b in [(0, 5000), (17, 333), (4999, 5000), (100, 100)]:
            assert np.array_equal(read(a, b), stored[a:b])
