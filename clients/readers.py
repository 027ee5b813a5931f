"""Input files for the CLI: CSV and NPZ example files read into ingest items, and the
annotator's ``.npy`` oracle. Every problem with a file raises ``BadInput`` naming the file
(and the line, for CSV).

CSV: a header row, a ``label`` column (class index, or class name when not an integer),
optional ``external_id`` and ``source`` columns, every other column a feature in file order.
NPZ: arrays ``X`` (n x features, or n x input_shape), ``y`` (n class indices), optional
``ids``. Without ids, an example's ``external_id`` is its row index in the file. Features
are reshaped to the project's ``input_shape``. Oracle: a 1-d array of integer class indices,
indexed by each example's integer ``external_id``.
"""
from __future__ import annotations

import csv

import numpy as np

from .errors import BadInput


def read_csv(path: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X as n x features, y, external ids or None per row, sources or None per row)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not rows:
        raise BadInput(f"{path} is empty: expected a header row with a 'label' column")
    header = [h.strip() for h in rows[0]]
    if "label" not in header:
        raise BadInput(f"{path}: the header has no 'label' column (got {header[:8]})")
    special = {"label", "external_id", "source"}
    feature_columns = [i for i, h in enumerate(header) if h not in special]
    if not feature_columns:
        raise BadInput(f"{path}: no feature columns besides label/external_id/source")
    where = {h: header.index(h) for h in special if h in header}
    X, y, ids, sources = [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BadInput(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        try:
            X.append([float(row[i]) for i in feature_columns])
        except ValueError as exc:
            raise BadInput(f"{path}:{line}: a feature is not a number ({exc})") from None
        y.append(parse_label(row[where["label"]], classes, f"{path}:{line}"))
        ids.append(row[where["external_id"]].strip() or None if "external_id" in where
                   else str(len(ids)))
        sources.append(row[where["source"]].strip() or None if "source" in where else None)
    if not X:
        raise BadInput(f"{path}: no data rows")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64), ids, sources


def parse_label(text: str, classes: list[str], where: str) -> int:
    """A class index (an integer) or a class name; ``BadInput`` otherwise."""
    text = text.strip()
    try:
        label = int(text)
    except ValueError:
        if text in classes:
            return classes.index(text)
        raise BadInput(f"{where}: label {text!r} is neither a class index nor one of the "
                       f"project's classes {classes}") from None
    if not 0 <= label < len(classes):
        raise BadInput(f"{where}: label {label} is outside [0, {len(classes)})")
    return label


def read_npz(path: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X, y, external ids, sources) from arrays ``X``, ``y`` and optional ``ids``."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read {path} as .npz: {exc}") from None
    if isinstance(data, np.ndarray):                    # a single .npy array, renamed
        raise BadInput(f"cannot read {path} as .npz: it holds one array, not arrays X and y")
    try:
        with data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read {path} as .npz: {exc}") from None
    missing = [name for name in ("X", "y") if name not in arrays]
    if missing:
        raise BadInput(f"{path}: missing array(s) {missing}; found {sorted(arrays)}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim < 1 or y.ndim != 1 or len(X) != len(y):
        raise BadInput(f"{path}: X has shape {X.shape} and y {y.shape}; expected one label "
                       "per row of X")
    if not np.issubdtype(X.dtype, np.number):
        raise BadInput(f"{path}: X is not numeric ({X.dtype})")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise BadInput(f"{path}: y must hold integer class indices (got {y.dtype})")
    bad = np.flatnonzero((y < 0) | (y >= len(classes)))
    if len(bad):
        raise BadInput(f"{path}: y[{bad[0]}] = {y[bad[0]]} is outside [0, {len(classes)})")
    if "ids" in arrays:
        if len(arrays["ids"]) != len(y):
            raise BadInput(f"{path}: ids has {len(arrays['ids'])} entries for {len(y)} rows")
        ids = [str(i) for i in arrays["ids"].tolist()]
    else:
        ids = [str(i) for i in range(len(y))]
    return X.astype(np.float64), y.astype(np.int64), ids, [None] * len(y)


def load_items(path: str, project: dict, source: str | None) -> list[dict]:
    """The file's rows as API items, features reshaped to the project's ``input_shape``."""
    classes = [str(c) for c in project["classes"]]
    if path.endswith(".csv"):
        X, y, ids, sources = read_csv(path, classes)
    elif path.endswith(".npz"):
        X, y, ids, sources = read_npz(path, classes)
    else:
        raise BadInput(f"{path}: expected a .csv or .npz file")
    shape = tuple(int(d) for d in project["input_shape"])
    size = int(np.prod(shape))
    if int(np.prod(X.shape[1:])) != size:
        raise BadInput(f"{path}: each row has {int(np.prod(X.shape[1:]))} features; project "
                       f"{project['id']} expects input_shape {list(shape)} ({size} values)")
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))[0])
        raise BadInput(f"{path}: row {row} has NaN or infinite features")
    X = X.reshape((len(X),) + shape)
    return [{"x": X[i].tolist(), "label": int(y[i]), "external_id": ids[i],
             "source": source if source is not None else sources[i]}
            for i in range(len(y))]


def read_oracle(path: str) -> np.ndarray:
    """The annotator's truth: a 1-d integer array of class indices, indexed by external_id."""
    try:
        truth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read the oracle {path}: {exc}") from None
    if not isinstance(truth, np.ndarray):                # an .npz archive
        truth.close()
        raise BadInput(f"{path}: expected a .npy file holding one 1-d array of integer class "
                       "indices indexed by external_id (got an .npz archive)")
    if truth.ndim != 1 or not np.issubdtype(truth.dtype, np.integer):
        raise BadInput(f"{path}: expected a 1-d array of integer class indices indexed "
                       f"by external_id (got {truth.dtype} of shape {truth.shape})")
    return truth
