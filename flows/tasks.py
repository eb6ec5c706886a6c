"""Prefect tasks: thin wrappers around pipeline functions, cached on content keys.

Rules (see ../shared/notes/prefect.md for the measured reasons):
- every cached task has a `cache_key_fn` returning a content key computed by the flow from pipeline keys — never a
  Path, a model object or a timestamp; the key is also the result file name;
- results are small JSON records (paths, digests, cues), `persist_result=True`, `result_serializer="json"`, stored
  under the work directory (`result_storage` is set per run with `with_options`, see `configured`);
- the engine is never a task parameter: `get_engine` keeps one instance per process, keyed by the engine name, the
  models folder and the settings digest, so it is created once per flow run (and reused by later runs);
- engine work runs in the flow's thread (tasks are called directly, not submitted): MLX streams are thread-local.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.interrupt import requested
from flows.reporting import emit
from pipeline.config import Settings
from pipeline.errors import RenderError
from pipeline.files import file_stat
from pipeline.keys import content_key, sha256_bytes

FLOW_VERSION = "3"  # 2: scene mixes apply device effects ("(on the radio)"); 3: one-pass loudness, block figures

# ------------------------------------------------------------------------------------------------ run spec


@dataclass(frozen=True)
class RunSpec:
    """What every task of one flow run needs besides its own inputs. Never part of a cache key."""

    settings: Settings
    engine: str
    models_dir: str | None
    home: str
    script_name: str = "script"

    @property
    def store_root(self) -> Path:
        return Path(self.home) / "lines"

    @property
    def lock_root(self) -> Path:
        return Path(self.home) / "locks"

    @property
    def audition_dir(self) -> Path:
        return Path(self.home) / "auditions" / self.script_name

    @property
    def results_dir(self) -> Path:
        return Path(self.home) / "prefect-results"


def settings_digest(settings: Settings) -> str:
    return content_key("settings", "1", settings.model_dump(mode="json"))


# ------------------------------------------------------------------------------------------------ engine cache

_ENGINES: dict[str, Any] = {}
_ENGINE_LOCK = threading.Lock()


def get_engine(name: str, settings: Settings, models_dir: str | None = None):
    """One engine instance per (name, models folder, settings digest) in this process."""
    from pipeline.engines import create_engine

    cache_key = f"{name}|{models_dir or ''}|{settings_digest(settings)}"
    with _ENGINE_LOCK:
        engine = _ENGINES.get(cache_key)
        if engine is None:
            engine = _ENGINES[cache_key] = create_engine(name, settings, models_dir)
        return engine


def clear_engines() -> None:
    """Forget cached engines (tests; or to free a model's memory)."""
    with _ENGINE_LOCK:
        _ENGINES.clear()


_ANALYZERS: dict[str, Any] = {}


def get_analyzer(settings: Settings):
    from pipeline.analysis import make_analyzer

    key = f"{settings.casting.analyzer}|{settings.models.llm}"
    if key not in _ANALYZERS:
        _ANALYZERS[key] = make_analyzer(settings)
    return _ANALYZERS[key]


# ------------------------------------------------------------------------------------------------ helpers


def _param_key(name: str):
    """A cache_key_fn that returns the content key the flow passed as parameter `name`."""

    def cache_key(context, parameters: Mapping[str, Any]) -> str:
        return str(parameters[name])

    cache_key.__name__ = f"cache_key_from_{name}"
    return cache_key


def embedding_digest(embedding) -> str | None:
    if embedding is None:
        return None
    return sha256_bytes(np.ascontiguousarray(np.asarray(embedding, dtype="<f4")).tobytes())


_CACHED = dict(persist_result=True, result_serializer="json")


def file_record(path, *, hashed: bool = True) -> list | None:
    """[size, sha256, mtime_ns] of a deliverable we wrote (None when it is gone): checked on every rerun, so a
    truncated, emptied or replaced scene file, master or subtitle file is rebuilt rather than kept. Not `hashed`
    (a master copied from the scenes, never read back): the sha256 is None, so once touched it is rebuilt."""
    from pipeline.keys import sha256_file

    try:
        st = Path(path).stat()
        return [st.st_size, sha256_file(path) if hashed else None, st.st_mtime_ns]
    except OSError:
        return None


def files_intact(records: Mapping[str, list] | None) -> bool:
    """True when every recorded path still holds what was written: same size, and either the same mtime (untouched
    since: not read, so a cached rerun does not read hundreds of MB of masters and scenes back) or, once touched,
    the same sha256 (a touched file recorded without one is not intact). Records without an mtime (older results)
    are always hashed."""
    from pipeline.keys import sha256_file

    if not records:
        return False
    for path, record in records.items():
        size, digest = record[0], record[1]
        try:
            st = Path(path).stat()
            if st.st_size != size:
                return False
            if len(record) > 2 and record[2] == st.st_mtime_ns:
                continue
            if digest is None or sha256_file(path) != digest:
                return False
        except OSError:
            return False
    return True


def configured(task_obj, spec: RunSpec, refresh: bool = False):
    """The task with this run's result storage (under the work dir) and, when `refresh`, caches ignored."""
    from flows.results import result_storage

    # plain JSON only; loading imports nothing a result file names (flows/results.py)
    return task_obj.with_options(result_storage=result_storage(spec.results_dir), refresh_cache=refresh or None)


# ------------------------------------------------------------------------------------------------ parse


@task(name="parse-script", cache_policy=NO_CACHE, persist_result=False)
def parse_task(script: str):
    """Read and parse the Fountain file (fast; never cached so an edited file is always re-read)."""
    from pipeline.fountain import read_script

    return read_script(script)


@task(name="collect-evidence", cache_policy=NO_CACHE, persist_result=False)
def evidence_task(screenplay):
    from pipeline.evidence import collect_evidence

    return collect_evidence(screenplay)


# ------------------------------------------------------------------------------------------------ casting


@task(name="analyze-character", task_run_name="analyze {character}", cache_key_fn=_param_key("key"), **_CACHED)
def analyze_task(key: str, character: str, evidence, overrides: dict | None, spec: RunSpec) -> dict:
    """Profile JSON of one character (analyzer + cast-file overrides)."""
    from pipeline.casting import analyze_character

    return analyze_character(evidence, get_analyzer(spec.settings), overrides).to_json()


@task(name="design-auditions", task_run_name="design {character}", cache_key_fn=_param_key("key"), **_CACHED)
def design_task(key: str, character: str, description: str, seeds: list[int], spec: RunSpec) -> dict:
    """N auditions of `description` as WAV files; returns their JSON records."""
    from pipeline.design import audition

    s = spec.settings
    engine = get_engine(spec.engine, s, spec.models_dir)
    auditions = audition(engine, description, s.casting.auditions, seeds, s.casting.sample_text, spec.audition_dir,
                         character, s.render.language)
    return {"description": description, "auditions": [a.to_json() for a in auditions]}


@task(name="pick-audition", task_run_name="pick {character}", cache_key_fn=_param_key("key"), **_CACHED)
def pick_task(key: str, character: str, auditions: list[dict], cast_embeddings: dict[str, list[float]],
              pinned: int | None, spec: RunSpec) -> dict:
    """Which audition keeps the cast most distinct (or the cast file's pin); returns index, reason, embedding."""
    from pipeline.casting import audition_embeddings
    from pipeline.design import Audition, pick

    engine = get_engine(spec.engine, spec.settings, spec.models_dir)
    embeddings = audition_embeddings(engine, [Audition.from_json(a) for a in auditions])
    cast = {k: np.asarray(v, dtype=np.float32) for k, v in cast_embeddings.items()}
    index, reason = pick(embeddings, cast, pinned=pinned)
    chosen = embeddings[index]
    return {"index": index, "reason": reason,
            "embedding": None if chosen is None else np.asarray(chosen, dtype=np.float32).ravel().tolist()}


@task(name="lock-voice", task_run_name="lock {character}", cache_key_fn=_param_key("key"), **_CACHED)
def lock_task(key: str, character: str, audition: dict, spec: RunSpec) -> dict:
    """Freeze the chosen audition into a lock file; returns its path and digest."""
    from pipeline.casting import lock_character
    from pipeline.design import Audition

    engine = get_engine(spec.engine, spec.settings, spec.models_dir)
    path, digest = lock_character(engine, Audition.from_json(audition), spec.settings, spec.lock_root,
                                  name=character)
    return {"lock_path": str(path), "lock_digest": digest}


@task(name="pinned-voice", task_run_name="pinned voice {character}", cache_key_fn=_param_key("key"), **_CACHED)
def pinned_voice_task(key: str, character: str, profile: dict, entry, spec: RunSpec) -> dict:
    """A cast-file lock/.vox or preset voice: the CastResult JSON plus the voice's embedding."""
    from pipeline.analysis.profile import CharacterProfile
    from pipeline.casting import pinned_character

    engine = get_engine(spec.engine, spec.settings, spec.models_dir)
    result, emb = pinned_character(engine, CharacterProfile.from_json(profile), spec.settings, entry,
                                   spec.lock_root)
    return {"result": result.to_json(),
            "embedding": None if emb is None else np.asarray(emb, dtype=np.float32).ravel().tolist()}


@task(name="delivery-variant", task_run_name="variant {character} {delivery}", cache_key_fn=_param_key("key"),
      **_CACHED)
def variant_task(key: str, character: str, delivery: str, lines: int, pinned: int | None, description: str,
                 neutral_embedding: list[float] | None, neutral_digest: str, spec: RunSpec) -> dict:
    """One delivery variant of a designed character (pipeline.variants.cast_variant); its VariantResult JSON."""
    from pipeline.variants import cast_variant

    engine = get_engine(spec.engine, spec.settings, spec.models_dir)
    neutral = None if neutral_embedding is None else np.asarray(neutral_embedding, dtype=np.float32)
    return cast_variant(engine, character, delivery, lines, pinned, description, neutral, neutral_digest,
                        spec.settings, spec.audition_dir, spec.lock_root).to_json()


# ------------------------------------------------------------------------------------------------ rendering


_CHUNK_LOCKS: dict[tuple, Any] = {}  # the last render chunk's voice locks, by (path, size, mtime_ns, digest)


def chunk_locks(locks: Mapping[str, str], needed) -> dict[str, Any]:
    """The voice locks of one render chunk by digest (`pipeline.lock.load_lock_as`: a replaced file is refused).

    The previous chunk's locks are reused (neighbouring chunks share most voices); the others are let go, not kept
    for the process's life: each lock holds its reference audio (0.4-0.8 MiB for preview voices), so keeping every
    voice and delivery variant met grew a cold render of a feature script by ~35 MiB."""
    global _CHUNK_LOCKS
    from pipeline.lock import load_lock_as

    keys = {d: (str(locks[d]), *(file_stat(locks[d]) or (None, None)), d) for d in needed if locks.get(d)}
    previous = _CHUNK_LOCKS
    loaded = {k: previous[k] if k in previous else load_lock_as(k[0], k[3]) for k in set(keys.values())}
    _CHUNK_LOCKS = loaded
    return {d: loaded[k] for d, k in keys.items()}


def release_chunk_locks() -> None:
    """Let the last render chunk's voice locks go (the render's chunks are done)."""
    global _CHUNK_LOCKS
    _CHUNK_LOCKS = {}


class ChunkRenderError(RenderError):
    """Some lines of a render chunk failed. Carries them (and what did render) so each failed line fails only
    its own scene."""

    def __init__(self, label: str, failures: list[dict], rendered: list[str], engine: dict,
                 stopped: list[str] = (), reused: list[str] = ()):
        self.label = label
        self.failures = failures
        self.rendered = rendered
        self.engine = engine
        self.stopped = list(stopped)
        self.reused = list(reused)
        lines = "; ".join(f"line {f['source_line']} {f['character']}: {f['reason']}" for f in failures[:10])
        super().__init__(f"Lines {label}: {len(failures)} line(s) failed — {lines}")


@task(name="render-lines", task_run_name="lines {label}", cache_policy=NO_CACHE, persist_result=False)
def render_lines_task(label: str, jobs: list[dict], locks: dict[str, str], spec: RunSpec,
                      force: bool = False) -> dict:
    """Render a chunk of lines (any scenes, any voices) through one engine session into the LineStore.

    The LineStore is this task's cache: the flow sends only lines the store lacks, and lines already stored when the
    task runs are skipped (unless `force`). Raises ChunkRenderError when any line failed; the lines that rendered
    are stored either way. A Ctrl-C (flows.interrupt) stops the engine session between two steps: the lines not
    finished by then come back under "stopped" (neither rendered nor failed)."""
    from pipeline.render import LineJob, render_missing
    from pipeline.store import LineStore

    s = spec.settings
    line_jobs = [LineJob.from_json(j) for j in jobs]
    engine = get_engine(spec.engine, s, spec.models_dir)
    needed = {j.voice_digest for j in line_jobs if j.voice_digest}
    lock_objs = chunk_locks(locks, needed)
    summary = render_missing(
        engine, LineStore(spec.store_root), line_jobs, lock_objs, batch_size=s.render.batch_size,
        language=s.render.language, force=force, settings=s, should_stop=requested,
        on_line=lambda job, status: emit("line", key=job.key, character=job.character, status=status,
                                         scene_index=job.scene_index))
    result = {"rendered": list(summary.rendered), "reused": list(summary.reused),
              "failed": [f.to_json() for f in summary.failed], "engine": summary.engine.to_json(),
              "stopped": list(summary.stopped)}
    if summary.failed:
        raise ChunkRenderError(label, result["failed"], result["rendered"], result["engine"], result["stopped"],
                               result["reused"])
    return result


@task(name="mix-scene", task_run_name="scene {scene[label]}", cache_key_fn=_param_key("scene_key"), **_CACHED)
def mix_scene_task(scene_key: str, scene: dict, jobs: list[dict], out_path: str, spec: RunSpec) -> dict:
    """Mix one scene from its stored lines (cached on the scene key: its ordered lines, assembly settings, path)."""
    from pipeline.assemble import mix_line, mix_scene
    from pipeline.render import LineJob
    from pipeline.store import LineStore

    store = LineStore(spec.store_root)
    line_jobs = [LineJob.from_json(j) for j in jobs]
    missing = store.missing(j.key for j in line_jobs)
    if missing:
        raise RenderError(f"Scene {scene['label']}: {len(missing)} line(s) are not in the line store at "
                          f"{store.root} (first {missing[0]}). Run the same command again to render them.")
    emit("scene_start", scene=scene["label"], lines=len(line_jobs))
    lines = [mix_line(j, store.path(j.key)) for j in line_jobs]
    started = time.perf_counter()
    mix = mix_scene(lines, Path(out_path), spec.settings, scene_index=scene["index"], heading=scene["heading"])
    mixing_s = time.perf_counter() - started
    return {"scene": scene["label"], "index": scene["index"], "heading": scene["heading"], "key": scene_key,
            "mix": mix.to_dict(), "file_stat": file_stat(mix.path), "files": {str(mix.path): file_record(mix.path)},
            "line_keys": [j.key for j in line_jobs], "timings": {"mixing": round(mixing_s, 4)}}


def _requested_masters(paths: dict[str, Path], wanted) -> dict[str, Path]:
    """`--format mp3` asks for an MP3 master only: the PCM master it was encoded from is removed, once every
    compressed master asked for exists (if ffmpeg skipped one, the PCM master stays as the deliverable)."""
    wanted = [f.lower().lstrip(".") for f in wanted]
    if any(f in ("wav", "flac") for f in wanted) or not wanted or not all(f in paths for f in wanted):
        return dict(paths)
    for fmt, path in paths.items():
        if fmt not in wanted:
            Path(path).unlink(missing_ok=True)
    return {fmt: p for fmt, p in paths.items() if fmt in wanted}


@task(name="assemble-master", cache_key_fn=_param_key("master_key"), **_CACHED)
def master_task(master_key: str, scenes: list[dict], out_dir: str, title: str, spec: RunSpec) -> dict:
    """Master file(s) with chapters, cue sheet, subtitles and labels from the scene mixes."""
    from pipeline.assemble import assemble_master
    from pipeline.timeline import SceneMixResult
    from pipeline.deliver import write_deliverables

    s = spec.settings
    mixes = [SceneMixResult.from_dict(sc["mix"]) for sc in scenes]
    master = assemble_master(mixes, Path(out_dir), s, title=title)
    written = write_deliverables(master, out_dir, subtitles=s.output.subtitles,
                                 narration_subtitles=s.narration.subtitles)
    paths = _requested_masters(master.paths, s.output.master_formats)
    outputs = {f"master_{fmt}": str(p) for fmt, p in paths.items()}
    outputs.update({name: str(p) for name, p in written.items()})
    copied = {str(p) for p in master.copied}
    return {"outputs": outputs, "files": {p: file_record(p, hashed=p not in copied) for p in outputs.values()},
            "duration": master.duration, "lufs": master.lufs,
            "true_peak_db": master.true_peak_db, "notes": list(master.notes)}
