"""Request and response bodies of the sources family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from ..fields import Label, Name


class ConfusionCountSchema(ma.Schema):
    from_label = fields.Integer()
    from_label_name = fields.String()
    to_label = fields.Integer()
    to_label_name = fields.String()
    count = fields.Integer()


class SourceSchema(ma.Schema):
    source = fields.String(allow_none=True, metadata={"description": "null: no source"})
    examples = fields.Integer()
    checked = fields.Integer(metadata={"description": "examples a person checked"})
    corrected = fields.Integer(metadata={"description": "checked examples whose label "
                                                        "differs from the one given"})
    noise_rate = fields.Float(allow_none=True)
    interval = fields.List(fields.Float(), allow_none=True, metadata={
        "description": "Wilson score interval of the noise rate"})
    confusion = fields.List(fields.Nested(ConfusionCountSchema))


class ProposalSchema(ma.Schema):
    source = fields.String(allow_none=True)
    from_label = fields.Integer()
    from_label_name = fields.String()
    to_label = fields.Integer()
    to_label_name = fields.String()
    corrections = fields.Integer(metadata={"description": "a → b corrections seen"})
    example_ids = fields.List(fields.Integer(), metadata={
        "description": "the source's unchecked a-labels the model predicts as b"})
    count = fields.Integer()


class SourceListSchema(ma.Schema):
    items = fields.List(fields.Nested(SourceSchema))
    interval_level = fields.Float()
    pattern_min = fields.Integer()
    proposals = fields.List(fields.Nested(ProposalSchema), metadata={
        "description": "batch relabels for a person to review; nothing changes without one"})


class ApplyProposalSchema(ma.Schema):
    source = Name(required=True, allow_none=True)
    from_label = Label(required=True)
    to_label = Label(required=True)


class AppliedSchema(ma.Schema):
    action = fields.String()
    changed = fields.Integer()
    example_ids = fields.List(fields.Integer())
