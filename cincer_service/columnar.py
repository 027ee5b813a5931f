"""Columnar training state of one model version: float32 arrays partitioned by label, in
files written once and memory-mapped by every worker that needs them.

A version's directory holds, in *partition order* (rows sorted by their label when the files
were written, then by example id):

- ``ids.npy`` (int64), ``labels.npy`` (int64), ``confirmed.npy`` (bool): the rows;
- ``offsets.npy`` (int64, ``c + 1``): partition ``k`` is rows ``offsets[k]:offsets[k+1]``;
- ``positions.npy`` (int64): for the ``i``-th training id in id order, its row here;
- ``x.npy`` (float32 ``(n, prod(input_shape))``): the inputs;
- ``h.npy`` (float32 ``(n, d + 1)``): the top layer's inputs ``ĥ = [h; 1]``;
- ``p.npy`` (float32 ``(n, c)``): the version's probabilities;
- ``manifest.json``: the format, the shapes, when the labels were read (``built_at``) and,
  per file, its size and SHA-256.

The directory appears atomically (written under a temporary name, then renamed), so a reader
sees a whole state or none. ``load`` checks every file's size, the SHA-256 of the small files
and of the large ones' ``.npy`` headers; the large arrays (``x``, ``h``, ``p``) carry one SHA-256
per label partition, checked the first time that partition is read (``rows``), or all of them
when the whole array is (``columns.h``). So a cold load reads ~25 bytes per example, and a
counter-example hashes only the partition it scans, once per process. A missing, truncated or
altered file raises ``CorruptState`` and is never used (``corrupt`` is then set, so the cache
that holds it rebuilds); ``load_or_build`` moves the directory aside and rebuilds it from the
database. The
labels in the files are those of ``built_at``: the database stays the source of truth and
later changes are applied over them (``ModelCache.training_state``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
ARRAYS = ("ids", "labels", "confirmed", "offsets", "positions", "x", "h", "p")
PARTITIONED = ("x", "h", "p")            # one checksum per label partition, checked on use
EAGER = tuple(a for a in ARRAYS if a not in PARTITIONED)     # checked whole on load
HASH_CHUNK = 16 * 2**20


class CorruptState(Exception):
    """A state directory that must not be used (missing, truncated or altered file)."""


def version_dir(root: str, project_id: int, version_id: int, created_at: datetime) -> str:
    """The directory of one model version's state under ``root`` (the row id and its creation
    time: SQLite may reuse the ids of a deleted project)."""
    stamp = int(created_at.timestamp() * 1e6) if created_at is not None else 0
    return os.path.join(root, f"project-{int(project_id)}", f"version-{int(version_id)}-{stamp}")


def _bytes_of(rows: np.ndarray) -> memoryview:
    """The rows' bytes without a copy, for hashing; an empty partition (a class with no
    training example) hashes as no bytes (a memoryview of a 2-D array with no rows cannot
    be cast to bytes)."""
    return memoryview(np.ascontiguousarray(rows).reshape(-1)).cast("B")


def file_sha256(path: str) -> str:
    """SHA-256 of a file, read in chunks (hashlib releases the GIL: files hash in parallel)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(HASH_CHUNK)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


@dataclass
class Columns:
    """A version's state as (memory-mapped) arrays in partition order; ``x`` is checked and
    mapped on first use."""

    path: str
    manifest: dict
    arrays: dict = field(default_factory=dict)
    corrupt: bool = False
    verified: set = field(default_factory=set)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __getattr__(self, name):
        if name in ARRAYS:
            array = self._array(name)
            if name in PARTITIONED:                 # the whole array: every partition
                for k in range(len(self.manifest["files"][name]["partitions"])):
                    self._verify(name, k)
            return array
        raise AttributeError(name)

    def _array(self, name: str) -> np.ndarray:
        arrays = self.__dict__["arrays"]
        if name not in arrays:
            with self._lock:
                if name not in arrays:
                    try:
                        arrays[name] = _map(self.path, self.manifest, name,
                                            verify=name not in PARTITIONED)
                    except CorruptState:
                        self.corrupt = True
                        raise
        return arrays[name]

    def _verify(self, name: str, k: int) -> None:
        if (name, k) in self.verified:
            return
        with self._lock:
            if (name, k) in self.verified:
                return
            start, stop = self.partition(k)
            block = self._array(name)[start:stop]
            digest = hashlib.sha256(_bytes_of(block))
            if digest.hexdigest() != self.manifest["files"][name]["partitions"][k]:
                self.corrupt = True
                raise CorruptState(f"{self.path}/{name}.npy: wrong checksum in partition {k}")
            self.verified.add((name, k))

    def rows(self, name: str, label: int) -> np.ndarray:
        """The rows of partition ``label`` of array ``name`` (checked on first use)."""
        self._verify(name, label)
        start, stop = self.partition(label)
        return self._array(name)[start:stop]

    @property
    def n(self) -> int:
        return int(self.manifest["n"])

    @property
    def n_classes(self) -> int:
        return int(self.manifest["classes"])

    @property
    def input_shape(self) -> tuple:
        return tuple(self.manifest["input_shape"])

    @property
    def built_at(self) -> float:
        """When the labels in the files were read (seconds since the epoch, UTC)."""
        return float(self.manifest["built_at"])

    def partition(self, label: int) -> tuple[int, int]:
        """``(start, stop)`` of the rows whose label was ``label`` when the files were built."""
        return int(self.offsets[label]), int(self.offsets[label + 1])

    @property
    def features(self) -> np.ndarray:
        """``x`` in the inputs' shape (a view of the map)."""
        return self.x.reshape((self.n, *self.input_shape))

    def mapped_bytes(self) -> int:
        """Bytes of the maps a worker keeps warm: all but ``x`` until something reads it."""
        read_x = any(name == "x" for name, _ in self.verified)
        return sum(int(a.nbytes) for name, a in self.arrays.items() if name != "x" or read_x)


def _map(path: str, manifest: dict, name: str, verify: bool) -> np.ndarray:
    meta = manifest["files"].get(name)
    file = os.path.join(path, f"{name}.npy")
    if meta is None:
        raise CorruptState(f"{path}: the manifest has no {name}")
    try:
        size = os.path.getsize(file)
    except OSError as exc:
        raise CorruptState(f"{file}: missing ({exc})") from exc
    if size != meta["bytes"]:
        raise CorruptState(f"{file}: {size} bytes, the manifest says {meta['bytes']}")
    if verify and file_sha256(file) != meta["sha256"]:
        raise CorruptState(f"{file}: wrong checksum")
    if "header_sha256" in meta:
        with open(file, "rb") as f:
            header = f.read(meta["data_offset"])
        if hashlib.sha256(header).hexdigest() != meta["header_sha256"]:
            raise CorruptState(f"{file}: wrong header checksum")
    try:
        return np.load(file, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise CorruptState(f"{file}: {exc}") from exc


def load(path: str) -> Columns:
    """Map the state in ``path``: every file's size is checked, the checksums of the small
    files and of the large files' headers (their partitions are checked on use).
    ``CorruptState`` otherwise."""
    try:
        with open(os.path.join(path, "manifest.json")) as f:
            manifest = json.load(f)
    except FileNotFoundError as exc:
        raise CorruptState(f"{path}: no manifest") from exc
    except (OSError, ValueError) as exc:
        raise CorruptState(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT or set(manifest.get("files", {})) != set(ARRAYS):
        raise CorruptState(f"{path}: unknown format")
    for name in PARTITIONED:                    # sizes and headers; a truncated file fails
        if "partitions" not in manifest["files"][name]:
            raise CorruptState(f"{path}: {name} has no partition checksums")
    mapped = {name: _map(path, manifest, name, verify=name not in PARTITIONED)
              for name in ARRAYS}
    return Columns(path, manifest, mapped)


def write(path: str, ids, labels, confirmed, x, h_aug, probs, built_at: float,
          n_classes: int) -> Columns:
    """Write a version's state to ``path`` once (rows in any order; they are partitioned
    here) and map it. If another process wrote it first, theirs is mapped."""
    ids = np.asarray(ids, np.int64)
    labels = np.asarray(labels, np.int64)
    order = np.lexsort((ids, labels))                   # by label, then id
    offsets = np.searchsorted(labels[order], np.arange(n_classes + 1), side="left")
    offsets[-1] = len(ids)
    by_id = np.argsort(ids[order], kind="stable")       # row of the i-th smallest id
    positions = np.empty(len(ids), np.int64)
    positions[:] = by_id
    x = np.asarray(x, np.float32)
    arrays = {"ids": ids[order], "labels": labels[order],
              "confirmed": np.asarray(confirmed, bool)[order],
              "offsets": offsets.astype(np.int64), "positions": positions,
              "x": x.reshape(len(ids), -1)[order],
              "h": np.asarray(h_aug, np.float32)[order], "p": np.asarray(probs, np.float32)[order]}
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        files = {}
        for name, array in arrays.items():
            file = os.path.join(tmp, f"{name}.npy")
            array = np.ascontiguousarray(array)
            np.save(file, array)
            files[name] = {"bytes": os.path.getsize(file), "dtype": str(array.dtype),
                           "shape": list(array.shape)}
            if name in PARTITIONED:
                with open(file, "rb") as f:
                    if np.lib.format.read_magic(f) == (1, 0):
                        np.lib.format.read_array_header_1_0(f)
                    else:
                        np.lib.format.read_array_header_2_0(f)
                    offset = f.tell()
                    f.seek(0)
                    files[name].update(data_offset=offset,
                                       header_sha256=hashlib.sha256(f.read(offset)).hexdigest())
                files[name]["partitions"] = [
                    hashlib.sha256(_bytes_of(array[offsets[k]:offsets[k + 1]]))
                    .hexdigest() for k in range(n_classes)]
            else:
                files[name]["sha256"] = file_sha256(file)
        manifest = {"format": FORMAT, "n": len(ids), "classes": int(n_classes),
                    "input_shape": list(x.shape[1:]), "built_at": float(built_at),
                    "written_at": time.time(), "files": files}
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        try:
            os.rename(tmp, path)
        except OSError:
            if not os.path.isdir(path):
                raise
            log.info("%s: written meanwhile by another process; using theirs", path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return load(path)


def discard(path: str) -> None:
    """Move a bad state directory aside (atomically), then delete it."""
    if not os.path.exists(path):
        return
    aside = os.path.join(os.path.dirname(path),
                         f".bad-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def prune(path: str, keep: int = 2) -> list[str]:
    """Delete the state directories of a project's older versions: all but the ``keep``
    newest (by version row id) beside ``path``, which always stays. A process that still
    maps an old file keeps its pages (the kernel frees them once unmapped). Returns what
    was deleted."""
    parent = os.path.dirname(path)

    def version_id(name):
        try:
            return int(name.split("-")[1])
        except (IndexError, ValueError):
            return None
    names = sorted((n for n in os.listdir(parent) if n.startswith("version-")
                    and version_id(n) is not None), key=version_id)
    doomed = [n for n in names[:-keep] if os.path.join(parent, n) != path] if keep else []
    for name in doomed:
        discard(os.path.join(parent, name))
    return doomed


def load_or_build(path: str, build) -> tuple[Columns, bool]:
    """``(columns, rebuilt)``: the state in ``path`` if it is whole, otherwise ``build()``'s
    arrays (a dict of ``write``'s keyword arguments) written there and mapped."""
    if os.path.isdir(path):
        try:
            return load(path), False
        except CorruptState as exc:
            log.warning("state %s is not usable (%s): rebuilding it from the database", path, exc)
            discard(path)
    return write(path, **build()), True
