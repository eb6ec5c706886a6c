"""`readthrough voices`: list, inspect, export and import voice locks (.lock.safetensors) and .vox files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.config import home_dir


def _locks_root(home: str | None) -> Path:
    return (Path(home).expanduser() if home else home_dir()) / "locks"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


@click.group(name="voices")
def command():
    """Voice locks and .vox voice files.

    \b
    A lock holds one cast voice (reference audio and text, reference codes, speaker x-vector,
    model id, digest). Locks live under $READTHROUGH_HOME/locks/<voice>/; relocking writes a new file.

    \b
    Examples:
      readthrough voices list
      readthrough voices inspect ~/.readthrough/locks/marge/marge-1a2b3c4d5e6f.lock.safetensors
      readthrough voices inspect voices/marge.vox
      readthrough voices export ~/.readthrough/locks/marge/marge-1a2b3c4d5e6f.lock.safetensors marge.vox
      readthrough voices import marge.vox            # into $READTHROUGH_HOME/locks
      readthrough voices import marge.vox out/locks --model mlx-community/Qwen3-TTS-12Hz-0.6B-Base-bf16
    """


@command.command(name="list")
@click.option("--home", type=click.Path(file_okay=False), help="Work directory (default $READTHROUGH_HOME).")
def list_cmd(home):
    """Table of the voice locks under HOME/locks (reads only file headers).

    \b
    Example:
      readthrough voices list --home ~/.readthrough
    """
    from pipeline.lock import list_locks

    root = _locks_root(home)
    locks = list_locks(root)
    if not locks:
        click.echo(f"No voice locks under {root}. Cast a script first: readthrough cast SCRIPT")
        return
    rows = []
    for path, m in locks:
        rel = str(path.relative_to(root))
        if "error" in m:
            rows.append(["?", "(unreadable)", "", "", "", "", rel])
            continue
        rows.append([m.get("name", ""), m.get("kind", ""), m.get("model_id", ""), m.get("language", ""),
                     m.get("created", ""), str(m.get("digest", ""))[:12], rel])
    click.echo(f"Voice locks under {root}:")
    click.echo(_table(rows, ["NAME", "KIND", "MODEL", "LANGUAGE", "CREATED", "DIGEST", "FILE"]))
    bad = [(p, m["error"]) for p, m in locks if "error" in m]
    for _, err in bad:
        click.echo(f"warning: {err}", err=True)


def _inspect_lock(path: Path) -> dict:
    from pipeline.errors import VoiceLockError
    from pipeline.lock import DIGEST_KEY, META_KEY, load_lock, read_header

    try:
        meta, tensors = read_header(path)
    except (OSError, ValueError) as e:
        raise VoiceLockError(f"{path}: not a voice lock or .vox file ({e}).") from None
    info = {"file": str(path), "type": "lock", "arrays": tensors, "digest": meta.get(DIGEST_KEY)}
    try:
        info["metadata"] = json.loads(meta[META_KEY])
    except (KeyError, ValueError):
        info["metadata"] = None
    try:
        load_lock(path)
        info["valid"] = True
    except VoiceLockError as e:
        info["valid"], info["problem"] = False, str(e)
    return info


def _inspect_vox(path: Path) -> dict:
    from pipeline.errors import VoiceLockError
    from pipeline.vox import CLONE_PROMPT, decode_clone_prompt, read_vox

    vox = read_vox(path)
    prompts = {}
    for name in vox.names:
        if name.endswith(CLONE_PROMPT):
            try:
                p = decode_clone_prompt(vox.read(name))
                prompts[name] = {"ref_codes": list(p.ref_codes.shape), "language": p.language, "ref_text": p.ref_text,
                                 "x_vector": None if p.x_vector is None else list(p.x_vector.shape)}
            except (ValueError, VoiceLockError) as e:
                prompts[name] = {"error": str(e)}
    return {"file": str(path), "type": "vox", "manifest": vox.manifest, "entries": list(vox.names),
            "clone_prompts": prompts, "problems": list(vox.problems)}


@command.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect(file, as_json):
    """Show a lock's metadata and array shapes, or a .vox's manifest and clone prompts.

    \b
    Examples:
      readthrough voices inspect marge-1a2b3c4d5e6f.lock.safetensors
      readthrough voices inspect marge.vox --json
    """
    path = Path(file)
    info = _inspect_vox(path) if _is_zip(path) else _inspect_lock(path)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False))
        return
    click.echo(f"{info['file']} ({'.vox voice file' if info['type'] == 'vox' else 'voice lock'})")
    if info["type"] == "lock":
        for k, v in sorted((info["metadata"] or {}).items()):
            click.echo(f"  {k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v}")
        click.echo(f"  digest: {info['digest']}")
        for k, v in sorted(info["arrays"].items()):
            click.echo(f"  array {k}: {v['dtype']} {v['shape']}")
        click.echo("  valid: yes" if info["valid"] else f"  valid: NO — {info['problem']}")
        return
    m = info["manifest"]
    voice = m["voice"]
    click.echo(f"  vox_version: {m['vox_version']}  id: {m['id']}  created: {m['created']}")
    click.echo(f"  name: {voice['name']}")
    click.echo(f"  description: {voice['description']}")
    for k in ("language", "gender", "age_range", "tags"):
        if k in voice:
            click.echo(f"  {k}: {voice[k]}")
    for key, e in sorted((m.get("embeddings") or {}).items()):
        lang = f" [{e['language']}]" if e.get("language") else ""
        click.echo(f"  embedding {key}{lang}: {e.get('file')} (model {e.get('model')})")
    for name, p in sorted(info["clone_prompts"].items()):
        click.echo(f"  clone prompt {name}: " + (p["error"] if "error" in p else
                   f"ref_codes {p['ref_codes']}, x_vector {p['x_vector']}, ref_text {p['ref_text']!r}"))
    click.echo(f"  entries: {', '.join(info['entries'])}")
    for problem in info["problems"]:
        click.echo(f"  warning: {problem}")


@command.command()
@click.argument("lock_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--gender", type=click.Choice(["male", "female", "nonbinary", "neutral"]), help="voice.gender")
@click.option("--age-range", nargs=2, type=int, help="voice.age_range: MIN MAX")
@click.option("--tag", "tags", multiple=True, help="voice.tags (repeatable)")
@click.option("--size", type=click.Choice(["0.6b", "1.7b"]), help="Model size, if the model id does not say it.")
def export(lock_file, out, gender, age_range, tags, size):
    """Write a clone lock as a .vox file (vox-format 0.4.0) other tools can read. Delivery variants cast with the
    lock (the variant locks beside it whose params name it as their neutral voice) go into the same file.

    \b
    Example:
      readthrough voices export ~/.readthrough/locks/marge/marge-1a2b3c4d5e6f.lock.safetensors marge.vox --tag warm
    """
    from pipeline.lock import load_lock
    from pipeline.variants import family_variants
    from pipeline.vox import export_vox

    lock = load_lock(lock_file)
    variants = family_variants(lock_file, lock)
    path = export_vox(lock, out, gender=gender, age_range=age_range or None, tags=tags, size=size,
                      variants=variants)
    also = f", with delivery variants: {', '.join(v.params['delivery'] for v in variants)}" if variants else ""
    click.echo(f"Wrote {path} (voice {lock.name!r}{also})")


@command.command(name="import")
@click.argument("vox_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", required=False, type=click.Path(file_okay=False))
@click.option("--model", "model_id", help="Pick the clone prompt for this Base model id or size (e.g. 0.6b).")
@click.option("--language", help="Pick the clone prompt for this language (BCP-47); falls back to the default.")
def import_cmd(vox_file, out_dir, model_id, language):
    """Turn a .vox's Qwen3-TTS clone prompt into a voice lock under OUT_DIR (default $READTHROUGH_HOME/locks), and
    each delivery variant it carries (written by readthrough) into a variant lock beside it.

    \b
    Examples:
      readthrough voices import marge.vox
      readthrough voices import marge.vox out/locks --model 1.7b --language es
    """
    from pipeline.lock import lock_path, save_lock
    from pipeline.variants import variant_lock_path
    from pipeline.vox import import_vox, import_vox_variants

    lock = import_vox(vox_file, model_id=model_id, language=language)
    root = Path(out_dir) if out_dir else _locks_root(None)
    path = save_lock(lock, lock_path(root, lock.name, lock.digest()))
    click.echo(f"Wrote {path} (voice {lock.name!r}, model {lock.model_id})")
    for v in import_vox_variants(vox_file, lock):
        vpath = save_lock(v, variant_lock_path(root, lock.name, v.params["delivery"], v.digest()))
        click.echo(f"Wrote {vpath} (delivery variant {v.params['delivery']!r})")
