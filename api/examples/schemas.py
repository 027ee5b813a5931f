"""Request and response bodies of the examples family."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate, validates

from cincer_service.service.evaluation import SPLITS
from cincer_service.service.examples import STATUSES
from cincer_service.service.verdicts import VERDICTS

from ..fields import FreeText, Identifier, Label, Name, NumberArray
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


class IngestSchema(ma.Schema):
    items = fields.List(fields.Nested(ExampleInSchema), required=True,
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


class IngestResultSchema(ma.Schema):
    items = fields.List(fields.Nested(IngestedWithVerdictSchema))


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
