"""A content-addressed store of stage results: one JSON file per result, named by its input's hash.

Layout: `<root>/<kind>/<key[:2]>/<key>.json`, each file `{"value": ...}` on success or
`{"error": "..."}` on failure. Files are written under a temporary name, flushed to disk and
renamed, so neither a reader nor a crash mid-write leaves half a result under the real name.
An entry that still reads back broken (a disk fault, a hand edit) counts as missing, with a
warning: the work runs again and overwrites it. Failures are kept for inspection but never
served: the work is retried when asked again.
"""

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Store:
    """Stage results on disk, keyed by the content hash of their input."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str, value_type: type[T]) -> T | None:
        """The stored result, or None when there is none (or only a failure)."""
        entry = self._read(kind, key)
        if entry is None or "value" not in entry:
            return None
        try:
            return TypeAdapter(value_type).validate_python(entry["value"])
        except ValidationError as error:
            logger.warning("store entry %s does not hold a valid result (%s): computing it again",
                           self.path(kind, key), error.errors()[0]["msg"])
            return None

    def failure(self, kind: str, key: str) -> str | None:
        """The error recorded by the last failed attempt, if the last attempt failed."""
        entry = self._read(kind, key)
        return None if entry is None else entry.get("error")

    def put(self, kind: str, key: str, value) -> None:
        self._write(kind, key, {"value": _jsonable(value)})

    def put_failure(self, kind: str, key: str, error: str) -> None:
        self._write(kind, key, {"error": error})

    def failures(self, kind: str) -> dict[str, str]:
        """Key -> recorded error of every failed entry of `kind`."""
        entries = {key: self._read(kind, key) for key in self.keys(kind)}
        return {key: entry["error"] for key, entry in entries.items() if entry and "error" in entry}

    def keys(self, kind: str) -> list[str]:
        return sorted(path.stem for path in (self.root / kind).glob("*/*.json"))

    def counts(self) -> dict[str, tuple[int, int]]:
        """(results, failures) per kind of stored work."""
        counts = {}
        for folder in sorted(path for path in self.root.glob("*") if path.is_dir()):
            entries = [self._read(folder.name, key) for key in self.keys(folder.name)]
            entries = [entry for entry in entries if entry is not None]  # broken ones count as missing
            failures = sum("error" in entry for entry in entries)
            counts[folder.name] = (len(entries) - failures, failures)
        return counts

    def _read(self, kind: str, key: str) -> dict | None:
        """The entry, or None when it is missing or broken (truncated, not JSON, not an entry)."""
        path = self.path(kind, key)
        try:
            entry = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            logger.warning("store entry %s is corrupt (%s): computing it again", path, error)
            return None
        if not isinstance(entry, dict) or not ({"value", "error"} & entry.keys()):
            logger.warning("store entry %s is not a result or a failure: computing it again", path)
            return None
        return entry

    def _write(self, kind: str, key: str, entry: dict) -> None:
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump(entry, stream)
                stream.flush()
                os.fsync(stream.fileno())  # the data is on disk before the name points at it
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # and so is the rename
        finally:
            os.close(directory)


def _jsonable(value):
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value
