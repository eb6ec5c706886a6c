"""Result storage for cached tasks that reads only plain JSON of our own schema and imports nothing a file names.

Prefect's result files say how to read themselves: the record's `metadata.serializer` picks the serializer (a file
may name `pickle`, or a JSON serializer with its own `jsonlib` / `object_decoder` to import), and Prefect's JSON
decoder imports any class named in a `"__class__"` (or `"__exc_type__"`) key. Our cached results are plain dicts and
lists, so `PlainJSONResultStorage.read_path` accepts a record only when it is exactly that: a JSON object with a
JSON serializer and a result holding no such keys. The metadata it hands on names the plain JSON serializer and
nothing else. A record that fails the check reads as absent (Prefect's cache look-up treats a read error as a miss),
so the task runs again and writes a clean record over it.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.filesystems import LocalFileSystem

IMPORTING_KEYS = frozenset({"__class__", "__exc_type__"})
_RECORD_KEYS = {"metadata", "result"}
_METADATA_KEYS = {"serializer", "expiration", "storage_key", "storage_block_id", "prefect_version"}


class UnsafeResultError(ValueError):
    """A result file that is not a plain JSON record of ours."""


def _plain(value: Any, where: str) -> Any:
    """`value` (decoded JSON) unchanged if it holds no key that Prefect's decoder would import; else raise."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            bad = IMPORTING_KEYS & set(item)
            if bad:
                raise UnsafeResultError(f"{where}: result names a type to import ({sorted(bad)[0]})")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def check_result_record(content: bytes, where: str = "result file") -> bytes:
    """The record, re-encoded with the plain JSON serializer, if `content` is a plain JSON result record; raises
    UnsafeResultError (a ValueError) otherwise."""
    try:
        record = json.loads(content)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnsafeResultError(f"{where}: not JSON ({e})") from None
    if not isinstance(record, dict) or set(record) - _RECORD_KEYS or not isinstance(record.get("metadata"), dict):
        raise UnsafeResultError(f"{where}: not a result record")
    meta = record["metadata"]
    serializer = meta.get("serializer")
    if set(meta) - _METADATA_KEYS or not isinstance(serializer, dict) or serializer.get("type") != "json":
        raise UnsafeResultError(f"{where}: not written by the plain JSON serializer")
    result = record.get("result")
    if not isinstance(result, str):
        raise UnsafeResultError(f"{where}: the result is not JSON text")
    try:
        _plain(json.loads(result), where)
    except ValueError as e:
        raise UnsafeResultError(f"{where}: {e}") from None
    clean_meta = {k: v for k, v in meta.items() if k != "serializer"}
    clean_meta["serializer"] = {"type": "json"}
    return json.dumps({"metadata": clean_meta, "result": result}).encode()


class PlainJSONResultStorage(LocalFileSystem):
    """A local folder of result records that are read only when they are plain JSON (see the module doc)."""

    _block_type_name = "Readthrough Plain JSON Results"

    async def aread_path(self, path: str) -> bytes:
        return check_result_record(await super().aread_path(path), f"result file {path}")

    def read_path(self, path: str, _sync: bool | None = None) -> bytes:  # Prefect calls the sync or the async one depending on context
        content = LocalFileSystem.read_path(self, path, _sync=True)
        return check_result_record(content, f"result file {path}")


_SAVED: dict[tuple[str, str], PlainJSONResultStorage] = {}


def result_storage(folder) -> PlainJSONResultStorage:
    """The storage block for `folder`, saved on the Prefect API in use (tasks accept only saved blocks); once per
    process, folder and API."""
    import hashlib

    from prefect.settings import PREFECT_API_URL

    folder = str(folder)
    memo = (folder, str(PREFECT_API_URL.value() or "ephemeral"))
    block = _SAVED.get(memo)
    if block is None:
        block = PlainJSONResultStorage(basepath=folder)
        block.save(f"readthrough-results-{hashlib.sha256(folder.encode()).hexdigest()[:16]}", overwrite=True)
        _SAVED[memo] = block
    return block
