"""Request and response bodies of the webhooks family."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cincer_service.service.webhooks import EVENTS, MAX_URL_LENGTH


class WebhookCreateSchema(ma.Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=MAX_URL_LENGTH), metadata={
                         "description": "where events are POSTed (http or https)"})
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)),
                         validate=validate.Length(min=1), load_default=None, metadata={
                             "description": "the events to receive (default: all of "
                                            + ", ".join(EVENTS) + ")"})


class WebhookSchema(ma.Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String(metadata={"enum": list(EVENTS)}))
    active = fields.Boolean()
    created_at = fields.DateTime()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={
        "description": "the signing secret (whsec_ + base64); shown only in this answer"})


class WebhookListSchema(ma.Schema):
    items = fields.List(fields.Nested(WebhookSchema))


class WebhookDeliverySchema(ma.Schema):
    id = fields.Integer()
    endpoint_id = fields.Integer()
    message_id = fields.String(metadata={"description": "the webhook-id header, the same on "
                                                        "every retry"})
    event = fields.String(metadata={"enum": list(EVENTS)})
    payload = fields.Dict(metadata={"description": "{type, timestamp, data}"})
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = fields.String(allow_none=True)
    response_status = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)


class WebhookDeliveryArgsSchema(ma.Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**53))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class WebhookDeliveryPageSchema(ma.Schema):
    items = fields.List(fields.Nested(WebhookDeliverySchema))
    total = fields.Integer()
