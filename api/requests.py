"""Request-level rules every request follows, before any view runs:

- an id in the path (``<int:pid>`` ...) lies in ``0..MAX_ID``, else a JSON 404 naming it;
- a body is declared as JSON (else 415);
- the edge check of every JSON body, in one place for every operation: the body is parsed
  once, here, and must be UTF-8 JSON (400 ``invalid_json`` with the parser's reason), without
  NaN/Infinity (400), nested at most ``MAX_JSON_DEPTH`` arrays/objects deep (400
  ``too_deep``), and every string in it, keys included, must be valid Unicode: a lone UTF-16
  surrogate (``"\\ud800"``) is a 422 naming the field's path (``items.0.text``). Nothing
  is stored on any of these. The views' schemas get the parsed value (``api.fields``);
- an ``Idempotency-Key`` header makes a retried POST return the first answer instead of
  applying it twice (``cincer_service.service.idempotency``).
"""
from __future__ import annotations

import json
import re

import msgpack
import orjson
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from cincer_service.service import BadInput, NotFound, idempotency

from .auth import current_principal
from .errors import InvalidBody
from .extensions import get_context
from .fields import MAX_ID, PARSED_BODY, NonFiniteNumber, check_text, strict_json_loads

IDEMPOTENCY_HEADER = "Idempotency-Key"
BODY_METHODS = ("POST", "PUT", "PATCH")

# The deepest nesting of arrays and objects a body may have (the top-level value is level 1).
# The deepest real body is an image batch, {"items": [{"x": [[[...]]]}]}: 6 levels.
MAX_JSON_DEPTH = 64
# A lone UTF-16 surrogate: JSON's "\ud800" escape decodes to one; no text encoding holds it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# MessagePack bodies, the alternative to JSON (the same schemas read the decoded value).
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
_MAX_REPORTED = 50             # field paths named in one 422 at most
_NESTED_OR_TEXT = frozenset({str, list, dict})
# Every digit read as "0", "." kept and every other byte read as " " (bytes.translate: far
# faster than a regex over a large body), and the run of digits, not after a decimal point,
# past which orjson would read an integer as a float. A fraction's digits follow "." and are
# never an integer: Python writes many floats with 19+ of them (0.0012345678901234567).
_DIGITS_AS_ZERO = bytes(ord("0") if chr(c) in "0123456789" else ord(".") if chr(c) == "."
                        else ord(" ") for c in range(256))
_LONG_INTEGER = b" " + b"0" * 19


def check_path_ids() -> None:
    """A 404 in the JSON shape, naming the parameter, for a path id outside ``0..MAX_ID``
    (the URL converter matches any integer so that these reach this check)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NotFound(f"path parameter {name} = {_short(value)} is out of range: ids are "
                           f"integers from 0 to 2^63-1, so nothing has this one",
                           {name: [f"an integer from 0 to {MAX_ID}"]})


def require_json_body() -> None:
    """415 for a body that is not declared as JSON or MessagePack (it would read as missing
    fields)."""
    if (request.method in BODY_METHODS and request.content_length and not request.is_json
            and not is_msgpack()):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' (or as MessagePack "
            f"with 'Content-Type: {MSGPACK_TYPES[0]}'; got "
            f"{request.mimetype or 'no content type'!r})")


def is_msgpack() -> bool:
    """Whether the request declares a MessagePack body."""
    return request.mimetype in MSGPACK_TYPES


def _short(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def check_json_body() -> None:
    """Parse a JSON (or MessagePack) body once, and refuse what no schema should ever see
    (module doc)."""
    msgpack_body = is_msgpack()
    if (request.method not in BODY_METHODS or not (request.is_json or msgpack_body)
            or request.routing_exception is not None):
        return
    raw = request.get_data(cache=True)          # 413 past MAX_CONTENT_LENGTH
    if not raw:
        return
    value = parse_msgpack_body(raw) if msgpack_body else parse_json_body(raw)
    check_json_value(value)
    if msgpack_body:
        check_json_types(value)
    setattr(g, PARSED_BODY, value)


def parse_msgpack_body(raw: bytes):
    """The decoded MessagePack body (strings must be UTF-8, map keys strings), or
    ``InvalidBody`` (400) saying why not."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        reason = str(exc) or type(exc).__name__
        raise InvalidBody(f"the body is not valid MessagePack: {reason}",
                          {"_schema": [f"send the body as MessagePack ({reason})"]}) from None


def check_json_types(value) -> None:
    """``InvalidBody`` for a MessagePack value JSON cannot say (binary, extension types, a
    float that is NaN or infinite): the schemas read JSON's values only."""
    try:
        orjson.dumps(value)
    except TypeError as exc:
        raise InvalidBody(f"the body holds a value JSON has no type for: {exc}",
                          {"_schema": ["only maps, arrays, strings, numbers, booleans and nil"]}
                          ) from None


def parse_json_body(raw: bytes):
    """The decoded body, or ``InvalidBody`` (400) saying what is wrong and where.

    orjson parses (several times faster on a batch of inputs); a body it refuses, or one with
    a run of 19+ digits not after a decimal point (an integer orjson would turn into a
    float), is parsed again by the standard library, whose reading is the contract and
    whose message names the error."""
    if _LONG_INTEGER not in b" " + raw.translate(_DIGITS_AS_ZERO):   # " ": one at the start
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass                # the slow path below says why (or accepts what orjson won't)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody(f"the body is not valid JSON: it is not UTF-8 (byte {exc.start} is "
                          f"{raw[exc.start:exc.start + 1]!r})",
                          {"_schema": ["send the body as UTF-8 JSON"]}) from None
    try:
        return strict_json_loads(text)
    except NonFiniteNumber as exc:
        raise InvalidBody(str(exc), {"_schema": [str(exc)]}) from None
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise InvalidBody(f"the body is not valid JSON: {reason}", {"_schema": [reason]}) from None
    except RecursionError:
        raise too_deep() from None
    except ValueError as exc:                   # e.g. an integer of more than 4300 digits
        raise InvalidBody(f"the body is not valid JSON: {exc}", {"_schema": [str(exc)]}) from None


def too_deep() -> InvalidBody:
    return InvalidBody(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels "
                       f"deep (the limit)", {"max_depth": MAX_JSON_DEPTH}, code="too_deep")


def check_json_value(value) -> None:
    """``too_deep`` past ``MAX_JSON_DEPTH``; a 422 naming every string (value or key) that
    holds a lone surrogate, by its dotted path. Iterative: no recursion on hostile input."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise BadInput("lone surrogates in text", {"_schema": [_surrogate_message()]})
        return
    if not isinstance(value, (list, dict)):
        return
    bad: dict[str, list[str]] = {}
    stack = [(value, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise too_deep()
        if type(node) is list and set(map(type, node)).isdisjoint(_NESTED_OR_TEXT):
            continue                # numbers, booleans and nulls only (an input row): fast
        for key, child in (node.items() if isinstance(node, dict) else enumerate(node)):
            kind = type(child)
            if kind is str:
                if _SURROGATE.search(child) and len(bad) < _MAX_REPORTED:
                    bad[_dotted(path + (key,))] = [_surrogate_message()]
            elif kind is list or kind is dict:
                stack.append((child, path + (key,), depth + 1))
            if type(key) is str and _SURROGATE.search(key) and len(bad) < _MAX_REPORTED:
                bad[_dotted(path + (key,))] = ["a key with a lone UTF-16 surrogate (such as "
                                               "\\ud800); keys must be valid Unicode text"]
    if bad:
        raise BadInput("lone surrogates in text", dict(sorted(bad.items())))


def _surrogate_message() -> str:
    return ("holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode text; "
            "send the character itself or a complete surrogate pair")


def _dotted(path: tuple) -> str:
    """``("items", 0, "text")`` -> ``items.0.text`` (unencodable characters escaped)."""
    return ".".join(str(p).encode("utf-8", "backslashreplace").decode("utf-8") for p in path)


def replay_idempotent_post():
    """The stored answer when this POST's ``Idempotency-Key`` was seen before."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if request.method != "POST" or key is None:
        return None
    try:
        key = check_text(key.strip())
    except Exception as exc:
        raise BadInput("bad Idempotency-Key header", {IDEMPOTENCY_HEADER: [str(exc)]}) from None
    if not key:
        raise BadInput("empty Idempotency-Key header", {IDEMPOTENCY_HEADER: ["not empty"]})
    principal = current_principal()
    print_ = idempotency.fingerprint(request.method, request.path, request.get_data())
    stored = idempotency.reserve(get_context(), principal.token_id, key, print_)
    if stored is None:
        g.idempotency = (principal.token_id, key)
        return None
    status, body = stored
    response = jsonify(body)
    response.status_code = status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def remember_idempotent_post(response):
    """Keep a successful JSON answer under its ``Idempotency-Key``; free the key of a
    request that failed."""
    pending = g.pop("idempotency", None)
    if pending is not None:
        if 200 <= response.status_code < 300 and response.is_json:
            idempotency.remember(get_context(), *pending, response.status_code,
                                 response.get_json())
        else:
            idempotency.release(get_context(), *pending)
    return response


def register_request_rules(app: Flask) -> None:
    """Install the path-id and JSON-body checks and idempotency keys on every request (in
    this order: nothing is reserved or stored for a request the edge refuses)."""
    app.before_request(check_path_ids)
    app.before_request(require_json_body)
    app.before_request(check_json_body)
    app.before_request(replay_idempotent_post)
    app.after_request(remember_idempotent_post)
