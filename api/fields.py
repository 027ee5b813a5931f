"""Strict marshmallow fields and the strict JSON parser every blueprint uses.

Python's ``json`` accepts ``NaN`` and ``Infinity``, and marshmallow's numbers accept numeric
strings and booleans; the service wants neither, so these refuse them at the door.
"""
from __future__ import annotations

import json
import numbers
import unicodedata

import marshmallow as ma
from flask import g
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.routing import IntegerConverter

# The largest id a database integer holds (SQLite's and PostgreSQL's BIGINT): a larger one in
# a path or a body is no row anyone has, and must not reach the database (OverflowError).
MAX_ID = 2**63 - 1
# The largest magnitude a float32 holds: inputs are stored and trained on as float32, so a
# finite JSON number beyond it (1e300) would become infinite.
FLOAT32_MAX = 3.4028234663852886e38
# Where ``api.requests.check_json_body`` keeps the request's parsed JSON body (in ``flask.g``).
PARSED_BODY = "cincer_json_body"


class BoundedIntConverter(IntegerConverter):
    """Flask's ``<int:...>`` URL converter, documented as ``0..MAX_ID``.

    It matches any run of digits, with or without a minus sign, so that an id out of range
    (``-1``, ``2**70``) still reaches the route and ``api.requests.check_path_ids`` answers
    a 404 in the JSON error shape that names the parameter, instead of Werkzeug's generic
    "URL not found" for a route that did not match."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
        self.regex = r"-?\d+"

    def to_python(self, value: str) -> int:
        return int(value)            # the range is checked by api.requests.check_path_ids


class NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str):
    raise NonFiniteNumber(f"{name} is not a JSON number; send finite values")


def strict_json_loads(data: bytes | str):
    """``json.loads`` that refuses NaN, Infinity and -Infinity."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=_reject_constant)


class StrictJSONParser(FlaskParser):
    """webargs' Flask parser with NaN/Infinity refused (400, code ``invalid_json``).

    The body is normally parsed and checked once, before the view, by
    ``api.requests.check_json_body``; the parser takes that value instead of parsing again."""

    def _raw_load_json(self, req):
        parsed = g.get(PARSED_BODY, core.missing)     # a JSON or MessagePack body
        if parsed is not core.missing:
            return parsed
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            return strict_json_loads(data)
        except NonFiniteNumber as exc:
            abort(400, exc=exc, code="invalid_json", message=str(exc),
                  messages={"json": [str(exc)]})
        except UnicodeDecodeError as exc:
            self._handle_invalid_json_error(exc, req)


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint with the strict JSON parser."""

    ARGUMENTS_PARSER = StrictJSONParser()


class StrictInteger(ma.fields.Integer):
    """An integer given as a JSON integer (not a string, float or boolean)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)


class StrictFloat(ma.fields.Float):
    """A finite JSON number (not a string or boolean)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def check_text(value: str, max_length: int = 200) -> str:
    """``value`` unless it is too long or holds control characters (NUL, escapes...),
    which no name needs and some databases refuse."""
    if len(value) > max_length:
        raise ma.ValidationError(f"at most {max_length} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ma.ValidationError("control characters are not allowed")
    return value


class FreeText(ma.fields.String):
    """Any text up to ``max_length`` characters, line breaks allowed, but no NUL (which
    databases refuse)."""

    def __init__(self, max_length: int = 20_000, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > self.max_length:
            raise ma.ValidationError(f"at most {self.max_length} characters")
        if "\x00" in value:
            raise ma.ValidationError("NUL characters are not allowed")
        return value


class Name(ma.fields.String):
    """A non-blank name of at most 200 characters, stripped, without control characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        if not value:
            raise ma.ValidationError("must not be blank")
        return check_text(value)


class Label(ma.fields.Field):
    """A class given by its name or its index (the service checks it against the project)."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ma.ValidationError("a class name or a class index")
        if isinstance(value, int):
            if not 0 <= value < 2**31:
                raise ma.ValidationError("a class index must be in [0, 2^31)")
            return value
        if not value:
            raise ma.ValidationError("a class name must not be empty")
        return check_text(value)

    def _serialize(self, value, attr, obj, **kwargs):
        return value


def _json_type(value) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "an array", dict: "an object", type(None): "null"}.get(type(value), "text")


class Identifier(ma.fields.Field):
    """A caller's identifier: a JSON string of at most 200 characters. A number is refused
    rather than turned into a string (``7`` and ``"7"`` would silently become one id)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ma.ValidationError(
                f"a string, not {_json_type(value)}: send an id such as 7 as \"7\"")
        return check_text(value)

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class NumberArray(ma.fields.Field):
    """A number or nested lists of numbers (at most ``max_depth`` levels), all finite.

    Rectangularity and the project's ``input_shape`` are checked by the service."""

    def __init__(self, max_depth: int = 3, **kwargs):
        kwargs["metadata"] = {"type": "array", "items": {},
                              "description": "nested lists of finite numbers matching the "
                                             "project's input_shape", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)
        self.max_depth = max_depth

    def _deserialize(self, value, attr, data, **kwargs):
        self._check(value, 0)
        return value

    def _check(self, value, depth: int) -> None:
        if isinstance(value, list):
            if depth >= self.max_depth:
                raise ma.ValidationError(f"at most {self.max_depth} levels of nesting")
            if value and all(type(v) in (int, float) for v in value):
                for v in value:
                    self._check_number(v)
                return
            for v in value:
                self._check(v, depth + 1)
        elif type(value) not in (int, float):
            raise ma.ValidationError("nested lists of numbers")
        else:
            self._check_number(value)

    @staticmethod
    def _check_number(v) -> None:
        if v != v or v in (float("inf"), float("-inf")):
            raise ma.ValidationError("NaN or infinite values")
        if abs(v) > FLOAT32_MAX:
            shown = (f"{v:g}" if isinstance(v, float)
                     else f"an integer of {len(str(abs(v)))} digits")
            raise ma.ValidationError(f"{shown} is too large: inputs are stored as float32, "
                                     f"whose largest magnitude is {FLOAT32_MAX:.4g}")

    def _serialize(self, value, attr, obj, **kwargs):
        return value
