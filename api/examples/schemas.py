"""Request and response bodies of the examples family."""
from __future__ import annotations

import marshmallow as ma
import numpy as np
from flask import current_app
from marshmallow import fields, validate, validates

from cincer_service.service.evaluation import SPLITS
from cincer_service.service.examples import STATUSES
from cincer_service.service.verdicts import VERDICTS

from ..fields import FLOAT32_MAX, FreeText, Identifier, Label, Name, NumberArray
from ..queries.schemas import ExplanationSchema, QuerySideSchema


class ExampleInSchema(ma.Schema):
    external_id = Identifier(allow_none=True, metadata={
        "type": "string", "description": "your id: a string of ≤ 200 chars (a number is "
                                         "refused, not converted: send 7 as \"7\")"})
    x = NumberArray(metadata={"description": "the input as nested lists of numbers "
                                             "(tabular and image projects)"})
    image = FreeText(max_length=4_000_000, metadata={
        "description": "image projects: a base64 PNG or JPEG instead of x"})
    text = FreeText(max_length=20_000, metadata={
        "description": "text projects: the text, shown to annotators"})
    embedding = NumberArray(max_depth=1, metadata={
        "description": "text projects: your own embedding of the text (else it is hashed)"})
    label = Label(required=True, metadata={
        "description": "class name, or class index 0..len(classes)-1"})
    source = Name(allow_none=True)
    split = fields.String(validate=validate.OneOf(SPLITS), metadata={
        "description": "training (default): the example joins the training stream; "
                       "evaluation: it joins the evaluation set (status evaluation), its "
                       "label is trusted, it is never trained on, screened or queried, and "
                       "every model version is scored on it (the cleaning curve in /stats)"})


# What a tabular item may hold for ``IngestItems``' fast path (anything else takes the
# schema's own path, which names the error).
_FAST_KEYS = frozenset({"external_id", "x", "label", "source", "split"})


def _plain_text(value, strip: bool = False) -> bool:
    """A string that ``Identifier``/``Name``/``Label`` would take unchanged: ≤ 200
    printable characters (so no control characters), non-empty, and already stripped when
    ``strip``."""
    return (type(value) is str and 0 < len(value) <= 200 and value.isprintable()
            and (not strip or value.strip() == value))


def _fast_item(item) -> bool:
    """Whether ``ExampleInSchema`` would load ``item`` unchanged: a tabular item whose
    fields are plain (numbers in ``x`` are checked for the whole batch at once)."""
    if type(item) is not dict or not item.keys() <= _FAST_KEYS or type(item.get("x")) is not list:
        return False
    external_id, source = item.get("external_id"), item.get("source")
    label = item.get("label")
    return ((external_id is None or _plain_text(external_id))
            and (source is None or _plain_text(source, strip=True))
            and ((type(label) is int and 0 <= label < 2**31) or _plain_text(label))
            and item.get("split", "training") in SPLITS)


def _fast_numbers(rows: list[list]) -> bool:
    """Whether every row is a flat list of JSON numbers (no booleans), all finite and
    within float32's range, as ``NumberArray`` wants."""
    kinds: set = set()
    for row in rows:
        kinds.update(map(type, row))
        if not row:
            return False
    if not kinds <= {int, float}:
        return False
    try:
        values = np.asarray([v for row in rows for v in row], dtype=np.float64)
    except OverflowError:                  # an integer beyond float64: the slow path says so
        return False
    return bool(np.all(np.abs(values) <= FLOAT32_MAX))   # False for NaN and infinities too


class IngestItems(fields.List):
    """``List(Nested(ExampleInSchema))`` with a fast path for batches of plain tabular
    items: loading a thousand nested objects field by field took longer than storing them.
    A batch that is not plain in every item goes through the schema, whose answer (and
    error messages) it would have had anyway."""

    def _deserialize(self, value, attr, data, **kwargs):
        if (type(value) is list and value and all(_fast_item(item) for item in value)
                and _fast_numbers([item["x"] for item in value])):
            return [dict(item) for item in value]
        return super()._deserialize(value, attr, data, **kwargs)


class IngestSchema(ma.Schema):
    items = IngestItems(fields.Nested(ExampleInSchema), required=True,
                        validate=validate.Length(min=1),
                        metadata={"description": "1 to the service's max_batch items "
                                                 "(CINCER_MAX_BATCH, default 1000); all or "
                                                 "nothing"})

    @validates("items")
    def batch_limit(self, items, **_):
        limit = current_app.extensions["cincer"].settings.max_batch
        if len(items) > limit:
            raise ma.ValidationError(f"at most {limit} items per batch (got {len(items)})")


class IngestedSchema(ma.Schema):
    id = fields.Integer()
    status = fields.String()
    outcome = fields.String(metadata={
        "enum": ["created", "replayed", "updated"],
        "description": "created; replayed (this external_id was stored with the same input "
                       "and label: nothing changed); updated (same input, new label: a "
                       "label change in the history, why ingest_update)"})


class VerdictQuerySchema(ma.Schema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": ["computing", "open", "leased", "answered",
                                              "closed"]})
    leased_to_you = fields.Boolean(metadata={
        "description": "the pair is leased to this token (an admin or annotator token): "
                       "answer it with POST /queries/{id}/answer"})
    lease_expires_at = fields.DateTime(allow_none=True)
    counterexample = fields.Nested(QuerySideSchema, allow_none=True, metadata={
        "description": "as in a leased query; null while it is being computed (not found "
                       "within the wait) or when none was found (note)"})
    note = fields.String(allow_none=True)
    explanation = fields.Nested(ExplanationSchema, allow_none=True)


class IngestedWithVerdictSchema(IngestedSchema):
    """An ingested item; the verdict fields only with ``Prefer: wait=<seconds>``."""

    verdict = fields.String(metadata={
        "enum": list(VERDICTS),
        "description": "with Prefer: wait only. accepted (screened, margin below τ); "
                       "suspicious (query holds the pair); unscreened (reason says why: no "
                       "model yet, screening failing, not in the stream); pending (not "
                       "screened within the wait)"})
    reason = fields.String(allow_none=True)
    margin = fields.Float(allow_none=True)
    prediction = fields.Integer(allow_none=True)
    prediction_name = fields.String(allow_none=True)
    probabilities = fields.List(fields.Float(), allow_none=True)
    query = fields.Nested(VerdictQuerySchema, allow_none=True)


_PLAIN_RESULT = frozenset({"id", "status", "outcome"})


class IngestedItems(fields.List):
    """``List(Nested(IngestedWithVerdictSchema))`` that passes a batch's plain results
    (``id``, ``status``, ``outcome``: the answer without ``Prefer: wait``) through as they
    are, which is what the nested schema would write, a thousand times faster."""

    def _serialize(self, value, attr, obj, **kwargs):
        if type(value) is list and all(type(item) is dict and item.keys() <= _PLAIN_RESULT
                                       for item in value):
            return [dict(item) for item in value]
        return super()._serialize(value, attr, obj, **kwargs)


class IngestResultSchema(ma.Schema):
    items = IngestedItems(fields.Nested(IngestedWithVerdictSchema))


# Past this an offset is no page anyone can reach, and the database's integers overflow.
MAX_OFFSET = 2**53


class ExampleListArgsSchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    source = fields.String()
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1),
                           metadata={"description": "page size, at most CINCER_MAX_PAGE "
                                                    "(default 500)"})

    @validates("limit")
    def page_limit(self, limit, **_):
        most = current_app.extensions["cincer"].settings.max_page
        if limit > most:
            raise ma.ValidationError(f"at most {most} (got {limit})")


class ExampleSchema(ma.Schema):
    id = fields.Integer()
    external_id = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    x = fields.Raw(metadata={"type": "array", "items": {}})
    text = fields.String(allow_none=True, metadata={"description": "a text project's text"})
    label = fields.Integer()
    label_name = fields.String()
    original_label = fields.Integer()
    original_label_name = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    confirmed = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ExamplePageSchema(ma.Schema):
    items = fields.List(fields.Nested(ExampleSchema))
    total = fields.Integer()


class LabelEventSchema(ma.Schema):
    at = fields.DateTime()
    actor = fields.String()
    old_label = fields.Integer(allow_none=True)
    old_label_name = fields.String(allow_none=True)
    new_label = fields.Integer()
    new_label_name = fields.String()
    why = fields.String(metadata={"description": "ingest, ingest_update, answer_example, "
                                                 "answer_counterexample, correction, ..."})
    reason = fields.String(allow_none=True)
    query_id = fields.Integer(allow_none=True)


class ExampleDetailSchema(ExampleSchema):
    history = fields.List(fields.Nested(LabelEventSchema))
