"""The mixing and mastering code as it was before issue 19 (commit OLD_COMMIT), for bench/bench_mix.py only.

The old `pipeline` package is extracted from git history into a temp folder as package `rt_old_pipeline`, and its
`mix_scene` / `assemble_master` are wrapped to take and return today's types, so a render flow can run either path.
Nothing in the product imports this."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

OLD_COMMIT = "eaf43d1"  # main before issue 19: iterative normalise, whole-scene mix in memory, two-pass master
REPO = Path(__file__).resolve().parent.parent


def load_old(commit: str = OLD_COMMIT):
    """Import the old pipeline package (as `rt_old_pipeline`) from `commit`."""
    if "rt_old_pipeline" in sys.modules:
        return sys.modules["rt_old_pipeline"]
    root = Path(tempfile.mkdtemp(prefix="rt-old-pipeline-"))
    archive = root / "old.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", commit, "pipeline"], check=True, stdout=f)
    with tarfile.open(archive) as t:
        t.extractall(root, filter="data")
    (root / "pipeline").rename(root / "rt_old_pipeline")
    sys.path.insert(0, str(root))
    return importlib.import_module("rt_old_pipeline")


def old_functions(commit: str = OLD_COMMIT):
    """(mix_scene, assemble_master) of the old path, taking and returning today's types."""
    load_old(commit)
    old = importlib.import_module("rt_old_pipeline.assemble")
    new = importlib.import_module("pipeline.timeline")
    old_fields = [f.name for f in dataclasses.fields(old.MixLine)]

    cue_fields = {f.name for f in dataclasses.fields(old.Cue)}

    def to_old(scene: dict) -> dict:  # today's cues carry fields the old Cue lacks (kind: dialogue or narration)
        return {**scene, "cues": [{k: v for k, v in c.items() if k in cue_fields} for c in scene["cues"]]}

    def to_new(cue: dict, kinds: dict) -> dict:
        return {**cue, "kind": kinds.get(cue["key"], "dialogue")}

    def mix_scene(lines, out_path, settings, *, scene_index, heading):
        old_lines = [old.MixLine(**{k: getattr(line, k) for k in old_fields if hasattr(line, k)}) for line in lines]
        res = old.mix_scene(old_lines, out_path, settings, scene_index=scene_index, heading=heading).to_dict()
        kinds = {line.key: line.kind for line in lines}
        return new.SceneMixResult.from_dict({**res, "cues": [to_new(c, kinds) for c in res["cues"]]})

    def assemble_master(scenes, out_dir, settings, *, title):
        olds = [old.SceneMixResult.from_dict(to_old(s.to_dict())) for s in scenes]
        kinds = {c.key: c.kind for s in scenes for c in s.cues}
        m = old.assemble_master(olds, out_dir, settings, title=title)
        chapters = tuple(new.Chapter(c.index, c.title, c.start_sample, c.end_sample, c.sample_rate)
                         for c in m.chapters)  # fmt: skip
        cues = tuple(new.TimedLine.from_dict(to_new(c.to_dict(), kinds)) for c in m.cues)
        return new.MasterResult(m.path, m.paths, m.title, m.duration, m.frames, m.sample_rate, m.channels, chapters,
                                cues, m.lufs, m.true_peak_db, m.gain_db, m.notes)  # fmt: skip

    return mix_scene, assemble_master
