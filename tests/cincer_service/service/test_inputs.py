"""Projects of each input kind through the service: text and images end to end."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from cincer_service.datasets import INTENT_TEMPLATES, synthetic_intents
from cincer_service.service import BadInput, examples, projects, queries, reports
from cincer_service.spec import ProjectSpec
from tests.support.service import annotator


def utterances(n: int, seed: int = 0):
    texts, labels, _ = synthetic_intents(n, seed)
    return list(zip(texts, labels))


def test_a_text_project_trains_screens_and_shows_the_text(ctx):
    pid = projects.create_project(ctx, ProjectSpec.build(
        name="intents", classes=list(INTENT_TEMPLATES), input_kind="text",
        input_shape=[256], bootstrap_size=40, model={"kind": "lr", "max_epochs": 80},
        retrain={"mode": "scratch", "every_n_answers": 100}))["id"]
    data = utterances(100)
    # Flip a few labels of the stream so some look suspicious.
    names = list(INTENT_TEMPLATES)
    items = [{"external_id": str(i), "text": t,
              "label": names[(y + 1) % 3 if i >= 40 and i % 7 == 0 else y]}
             for i, (t, y) in enumerate(data)]
    examples.ingest(ctx, pid, items)
    stats = reports.stats(ctx, pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    q = queries.lease_next_query(ctx, pid, annotator(ctx, pid))
    assert q is not None and isinstance(q["example"]["text"], str)
    assert q["example"]["text"] == data[int(q["example"]["external_id"])][0]
    assert len(q["example"]["x"]) == 256
    one = examples.get_example(ctx, pid, q["example"]["id"])
    assert one["text"] == q["example"]["text"]
    with pytest.raises(BadInput) as info:
        examples.ingest(ctx, pid, [{"text": "", "label": "lights"},
                                   {"x": [0.0] * 256, "label": "weather"},
                                   {"text": "hello", "label": "cooking"}])
    assert set(info.value.details) == {"items.0.text", "items.1.text", "items.2.label"}


def test_an_image_project_takes_png_and_lists(ctx):
    pid = projects.create_project(ctx, ProjectSpec.build(
        name="tiny", classes=["dark", "light"], input_kind="image", input_shape=[4, 4],
        bootstrap_size=100))["id"]
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    stored = examples.ingest(ctx, pid, [{"image": encoded, "label": "light"},
                                        {"x": [[0.0] * 4] * 4, "label": "dark"}])
    first = examples.get_example(ctx, pid, stored[0]["id"])
    assert first["x"] == [[1.0] * 4] * 4 and first["label_name"] == "light"
    with pytest.raises(BadInput) as info:
        examples.ingest(ctx, pid, [{"image": "bm90IGFuIGltYWdl", "label": "dark"}])
    assert "items.0.image" in info.value.details
    assert examples.list_examples(ctx, pid)["total"] == 2
