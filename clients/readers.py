"""Input files for the CLI: example files read into ingest items, and the annotator's
oracle. Every problem with a file raises ``BadInput`` naming the file (and the line, for
the line-based formats).

Example files (``FORMATS``), chosen by the file's extension:

- ``.csv``: a header row, a ``label`` column (see "labels" below) or a ``label_name``
  column (class names; it wins when both are there, as in the service's export), optional
  ``external_id`` and ``source`` columns, every other column a feature in file order (the
  export's other columns, ``EXPORT_ONLY``, are skipped).
- ``.npz``: arrays ``X`` (n x features, or n x input_shape), ``y`` (n class indices),
  optional ``ids``.
- ``.jsonl``: one JSON object per line, shaped like an item of the REST ingest body:
  ``label`` (a class name as a string, or a class index as an integer) and the input as
  ``x`` (numbers, flat or nested; reshaped to the project's ``input_shape``), ``text``
  (text projects, optionally with ``embedding``) or ``image`` (base64 PNG/JPEG); optional
  ``external_id`` (a string, as in the REST body) and ``source``.
- ``.txt``: one example per line, ``LABEL<TAB>TEXT`` (for text projects): the label
  before the first tab (see "labels" below), the text after it (kept as is, tabs
  included). Blank lines are skipped; UTF-8.

Labels, one rule everywhere (the REST API, the client, these readers): a string is a class
name and an integer is a class index. JSON (``.jsonl``, ``.json`` oracles) has both types.
In ``.csv`` and ``.txt`` files, and labels typed at the command line, everything is text, so
the readers never guess cell by cell: in a project whose class names are digits
(``["1", "0"]``) every label is read as a class name ("1" is class "1", never index 1),
and the CLI says so once (``label_note``); in any other project digits are a class index
and anything else a class name.

Without ids, an example's ``external_id`` is its row index in the file (blank lines not
counted). Features of ``.csv`` and ``.npz`` files are reshaped to the project's
``input_shape``.

Oracle (``read_oracle``): the true labels, found by each example's ``external_id``: a
``.npy`` file holding a 1-d array of integer class indices indexed by integer external
ids, a ``.json`` object ``{"external_id": label, ...}``, or any example file above, whose
labels are taken as the truth (e.g. the clean version of the file you ingested).
"""
from __future__ import annotations

import csv
import json
import os

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
    if "label" not in header and "label_name" not in header:
        raise BadInput(f"{path}: the header has no 'label' column (got {header[:8]})")
    special = {"label", "external_id", "source", *EXPORT_ONLY}
    feature_columns = [i for i, h in enumerate(header) if h not in special]
    if not feature_columns:
        raise BadInput(f"{path}: no feature columns besides label/external_id/source")
    where = {h: header.index(h) for h in special if h in header}
    # Class names win over indices when the file has both (the service's export does).
    label_column = where["label_name"] if "label_name" in where else where["label"]
    read_label = name_label if "label_name" in where else parse_label
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
        y.append(read_label(row[label_column], classes, f"{path}:{line}"))
        ids.append(row[where["external_id"]].strip() or None if "external_id" in where
                   else str(len(ids)))
        sources.append(row[where["source"]].strip() or None if "source" in where else None)
    if not X:
        raise BadInput(f"{path}: no data rows")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64), ids, sources


def digit_names(classes) -> bool:
    """Whether some class name is written in digits (``"1"``, ``"0"``): then a label given
    as text is always read as a class name (see the module docstring)."""
    return any(_is_integer(str(c)) for c in classes)


def _is_integer(text: str) -> bool:
    text = text.strip()
    return text[1:].isdigit() if text[:1] in "+-" else text.isdigit()


def parse_label(text: str, classes: list[str], where: str) -> int:
    """A label given as text (a ``.csv`` or ``.txt`` cell, a label typed at the command
    line) as a class index, by the one rule: in a project whose class names are digits it
    is a class name; otherwise digits are a class index and anything else a class name.
    ``BadInput`` when it is neither."""
    text = text.strip()
    classes = [str(c) for c in classes]
    if digit_names(classes) or not _is_integer(text):
        return name_label(text, classes, where)
    label = int(text)
    if not 0 <= label < len(classes):
        raise BadInput(f"{where}: label {label} is outside [0, {len(classes)})")
    return label


def name_label(text: str, classes: list[str], where: str) -> int:
    """The index of the class named ``text``; ``BadInput`` when there is none."""
    text = text.strip()
    classes = [str(c) for c in classes]
    if text in classes:
        return classes.index(text)
    if digit_names(classes) and _is_integer(text):
        raise BadInput(f"{where}: label {text!r} is not one of the project's classes "
                       f"{classes}; their names are digits, so labels are read as class "
                       "names, never as indices (give indices as JSON integers in a .jsonl "
                       "file)")
    raise BadInput(f"{where}: label {text!r} is neither a class index nor one of the "
                   f"project's classes {classes}")


def label_note(project: dict) -> str | None:
    """The one line the CLI prints when labels given as text are read as class names
    because the project's class names are digits; ``None`` otherwise."""
    classes = [str(c) for c in project.get("classes") or ()]
    if not digit_names(classes):
        return None
    shown = ", ".join(repr(c) for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
    return (f"note: project {project.get('id')}'s class names are digits ({shown}), so "
            "labels given as text are read as class names, not indices")


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


FORMATS = (".csv", ".npz", ".jsonl", ".txt")
# Columns of the service's export (``GET /projects/{pid}/export``) that are neither the
# label, the ids, the source nor a feature: a ``.csv`` export reads back as examples.
EXPORT_ONLY = ("id", "label_name", "original_label", "original_label_name", "status",
               "confirmed", "changed_by", "changed_at", "created_at", "image", "text",
               "embedding")
# The keys of a REST ingest item (``.jsonl`` lines).
ITEM_KEYS = ("external_id", "x", "image", "text", "embedding", "label", "source")
INPUT_KEYS = ("x", "image", "text")


def load_items(path: str, project: dict, source: str | None) -> list[dict]:
    """The file's examples as API items (``.csv``/``.npz`` features and ``.jsonl`` ``x``
    reshaped to the project's ``input_shape``); ``source``, when given, tags every item."""
    kind = os.path.splitext(path)[1].lower()
    if kind == ".jsonl":
        items = read_jsonl(path, project)
    elif kind == ".txt":
        items = read_text(path, project)
    elif kind in (".csv", ".npz"):
        items = _array_items(path, project)
    else:
        raise BadInput(f"{path}: expected a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file")
    if source is not None:
        for item in items:
            item["source"] = source
    return items


def _array_items(path: str, project: dict) -> list[dict]:
    """Items from a ``.csv`` or ``.npz`` file, features reshaped to ``input_shape``."""
    classes = [str(c) for c in project["classes"]]
    reader = read_csv if path.lower().endswith(".csv") else read_npz
    X, y, ids, sources = reader(path, classes)
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
             "source": sources[i]}
            for i in range(len(y))]


def _lines(path: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every non-blank line of a UTF-8 text file, without its
    line ending."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    found = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not found:
        raise BadInput(f"{path}: no examples (the file is empty)")
    return found


def read_jsonl(path: str, project: dict) -> list[dict]:
    """Items from a JSON-lines file of REST ingest items (see the module docstring)."""
    classes = [str(c) for c in project["classes"]]
    items = []
    for number, line in _lines(path):
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise BadInput(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise BadInput(f"{where}: expected a JSON object, got {type(value).__name__}")
        unknown = sorted(set(value) - set(ITEM_KEYS))
        if unknown:
            raise BadInput(f"{where}: unknown key(s) {unknown}; an item has "
                           f"{', '.join(ITEM_KEYS)}")
        if "label" not in value:
            raise BadInput(f"{where}: no 'label'")
        inputs = [key for key in INPUT_KEYS if value.get(key) is not None]
        if len(inputs) != 1:
            raise BadInput(f"{where}: give exactly one input of {', '.join(INPUT_KEYS)} "
                           f"(got {inputs or 'none'})")
        item = dict(value)
        item["label"] = json_label(value["label"], classes, where)
        item["external_id"] = _external_id(value.get("external_id", str(len(items))), where)
        item.setdefault("source", None)
        if "x" in inputs:
            item["x"] = _reshaped(value["x"], project, where)
        items.append(item)
    return items


def json_label(value, classes: list[str], where: str) -> int | str:
    """A JSON label as the REST API reads it: a string is a class name, an integer a class
    index; returned as given once it is known to be one of them."""
    if isinstance(value, str):
        if value in classes:
            return value
        raise BadInput(f"{where}: label {value!r} is not one of the project's classes "
                       f"{classes} (give an index as a JSON integer)")
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(classes):
            return value
        raise BadInput(f"{where}: label {value} is outside [0, {len(classes)})")
    raise BadInput(f"{where}: label must be a class name (string) or class index (integer), "
                   f"got {value!r}")


def _external_id(value, where: str) -> str | None:
    """A ``.jsonl`` line's ``external_id``: a string, as the REST API takes it."""
    if value is None or isinstance(value, str):
        return value
    hint = f' (write "{value}")' if isinstance(value, int) and not isinstance(value, bool) else ""
    raise BadInput(f"{where}: external_id must be a string{hint}, got {value!r}")


def _reshaped(x, project: dict, where: str) -> list:
    """``x`` as nested lists of floats in the project's ``input_shape``."""
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: x must hold numbers in nested lists of equal length") from None
    shape = tuple(int(d) for d in project.get("input_shape") or ())
    size = int(np.prod(shape)) if shape else array.size
    if array.size != size:
        raise BadInput(f"{where}: x has {array.size} values; project {project['id']} expects "
                       f"input_shape {list(shape)} ({size} values)")
    if not np.isfinite(array).all():
        raise BadInput(f"{where}: x has NaN or infinite values")
    return array.reshape(shape or array.shape).tolist()


def read_text(path: str, project: dict) -> list[dict]:
    """Items from a ``LABEL<TAB>TEXT`` file, one example per line (text projects)."""
    kind = project.get("input_kind", "tabular")
    if kind != "text":
        raise BadInput(f"{path}: a .txt file holds texts, but project {project['id']} takes "
                       f"{kind} inputs (use .csv, .npz or .jsonl)")
    classes = [str(c) for c in project["classes"]]
    items = []
    for number, line in _lines(path):
        where = f"{path}:{number}"
        label, tab, text = line.partition("\t")
        if not tab:
            raise BadInput(f"{where}: expected LABEL<TAB>TEXT, found no tab")
        if not text.strip():
            raise BadInput(f"{where}: the text after the tab is empty")
        items.append({"text": text, "label": parse_label(label, classes, where),
                      "external_id": str(len(items)), "source": None})
    return items


# Oracle files read with the project's classes (and input shape); others are ``.npy``.
PROJECT_ORACLES = (".json", *FORMATS)


def read_oracle(path: str, project: dict | None = None) -> np.ndarray | dict[str, int]:
    """The annotator's truth: a 1-d integer array of class indices indexed by integer
    external ids (``.npy``), or ``{external_id: class index}`` (``.json`` and the example
    files, which need the ``project`` for its classes and input shape)."""
    kind = os.path.splitext(path)[1].lower()
    if kind in PROJECT_ORACLES:
        if project is None:
            raise BadInput(f"{path}: reading a {kind} oracle needs the project")
        if not os.path.isfile(path):
            raise BadInput(f"cannot read the oracle {path}: no such file")
        if kind == ".json":
            return _json_oracle(path, [str(c) for c in project["classes"]])
        return _items_oracle(path, project)
    try:
        truth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read the oracle {path}: {exc}") from None
    if not isinstance(truth, np.ndarray):                # an .npz archive under another name
        truth.close()
        raise BadInput(f"{path}: expected a .npy file holding one 1-d array of integer class "
                       "indices indexed by external_id (got an .npz archive)")
    if truth.ndim != 1 or not np.issubdtype(truth.dtype, np.integer):
        raise BadInput(f"{path}: expected a 1-d array of integer class indices indexed "
                       f"by external_id (got {truth.dtype} of shape {truth.shape})")
    return truth


def _items_oracle(path: str, project: dict) -> dict[str, int]:
    """``{external_id: class index}`` from an example file's labels."""
    classes = [str(c) for c in project["classes"]]
    truth: dict[str, int] = {}
    for row, item in enumerate(load_items(path, project, None)):
        key = item["external_id"]
        if key is None:
            raise BadInput(f"{path}: row {row} has no external_id, so no example can be "
                           "matched to it")
        label = item["label"]
        index = classes.index(label) if isinstance(label, str) else int(label)
        if truth.setdefault(key, index) != index:
            raise BadInput(f"{path}: external_id {key!r} is given two different labels")
    return truth


def _json_oracle(path: str, classes: list[str]) -> dict[str, int]:
    """``{external_id: class index}`` from a JSON object of labels."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the oracle {path}: {exc}") from None
    except ValueError as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not value:
        raise BadInput(f"{path}: expected a non-empty JSON object {{external_id: label}}")
    truth = {}
    for key, label in value.items():
        label = json_label(label, classes, f"{path}: external_id {key!r}")
        truth[key] = classes.index(label) if isinstance(label, str) else label
    return truth


# -- exports read back (``python -m clients PID import FILE``) ---------------------------------
EXPORT_INTS = ("label", "original_label")


def read_export(path: str, project: dict) -> list[dict]:
    """The records of a service export (``GET /projects/{pid}/export``), for ``POST
    /projects/{pid}/import``: a ``.jsonl`` export's lines as they are; a ``.csv`` export's
    rows with ``x`` gathered from its feature columns (every column the export does not
    name otherwise) and reshaped to the project's ``input_shape``, ``embedding`` decoded,
    ``confirmed`` a boolean and empty cells missing. A label column without its
    ``label_name`` column is read by the one label rule (``parse_label``)."""
    kind = os.path.splitext(path)[1].lower()
    if kind == ".jsonl":
        records = []
        for number, line in _lines(path):
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise BadInput(f"{path}:{number}: not valid JSON ({exc})") from None
            if not isinstance(value, dict):
                raise BadInput(f"{path}:{number}: expected a JSON object, got "
                               f"{type(value).__name__}")
            records.append(value)
        return records
    if kind != ".csv":
        raise BadInput(f"{path}: an export is a .jsonl or .csv file")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not rows:
        raise BadInput(f"{path} is empty: expected an export's header row")
    header = [h.strip() for h in rows[0]]
    named = {"label", "external_id", "source", *EXPORT_ONLY}
    features = [i for i, h in enumerate(header) if h not in named]
    shape = tuple(int(d) for d in project.get("input_shape") or ())
    classes = [str(c) for c in project["classes"]]
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{path}:{line}"
        if len(row) != len(header):
            raise BadInput(f"{where}: {len(row)} fields, the header has {len(header)}")
        record = {h: row[i] for i, h in enumerate(header) if h in named and row[i] != ""}
        for key in EXPORT_INTS:
            if key in record and f"{key}_name" not in record:
                record[key] = parse_label(record[key], classes, where)
            elif key in record:
                del record[key]                 # its class name says it
        if "id" in record:
            del record["id"]
        if "confirmed" in record:
            record["confirmed"] = record["confirmed"].strip().lower() in ("true", "1", "yes")
        if "embedding" in record:
            try:
                record["embedding"] = json.loads(record["embedding"])
            except ValueError:
                raise BadInput(f"{where}: embedding is not a JSON list") from None
        if features and project.get("input_kind") != "text":
            try:
                values = [float(row[i]) for i in features]
            except ValueError as exc:
                raise BadInput(f"{where}: a feature is not a number ({exc})") from None
            record["x"] = _reshaped(values, project, where) if shape else values
        records.append(record)
    if not records:
        raise BadInput(f"{path}: no data rows")
    return records
