"""featurize: tabular vectors, images (nested lists or base64 PNG/JPEG) and hashed text."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from cincer_service.featurize import BadItem, featurize, text_features


def png(pixels: np.ndarray, fmt="PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_tabular_checks_shape_and_values():
    x, raw = featurize("tabular", {"x": [1, 2, 3]}, (3,))
    assert x.dtype == np.float32 and x.tolist() == [1, 2, 3] and raw is None
    for item, field in (({"x": [1, 2]}, "x"), ({"x": [1, float("nan"), 3]}, "x"),
                        ({"x": "abc"}, "x"), ({}, "x")):
        with pytest.raises(BadItem) as info:
            featurize("tabular", item, (3,))
        assert field in info.value.errors


def test_images_from_lists_and_base64():
    pixels = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    x, _ = featurize("image", {"image": png(pixels)}, (8, 8))
    assert np.allclose(x, pixels / 255.0, atol=1e-6)
    rgb, _ = featurize("image", {"image": "data:image/png;base64," + png(pixels)}, (4, 4, 3))
    assert rgb.shape == (4, 4, 3) and np.allclose(rgb[..., 0], rgb[..., 1])   # resized, gray
    jpeg, _ = featurize("image", {"image": png(pixels, "JPEG")}, (8, 8))
    assert np.abs(jpeg - pixels / 255.0).max() < 0.1                         # lossy but close
    listed, _ = featurize("image", {"x": pixels.tolist()}, (8, 8))
    assert np.array_equal(listed, pixels)
    for bad in ("not base64!", base64.b64encode(b"plain text").decode(), 7):
        with pytest.raises(BadItem) as info:
            featurize("image", {"image": bad}, (8, 8))
        assert "image" in info.value.errors


def test_text_is_hashed_statelessly_or_embedded():
    first = text_features(["turn the lights off in the kitchen"], 64)
    again = text_features(["turn the lights off in the kitchen"], 64)
    other = text_features(["what's the weather tomorrow"], 64)
    assert first.shape == (1, 64) and np.array_equal(first, again)       # no fitting
    assert np.isclose(np.linalg.norm(first), 1.0, atol=1e-5)
    assert (first @ other.T).item() < (first @ first.T).item()
    x, raw = featurize("text", {"text": "lights off"}, (64,))
    assert raw == "lights off" and x.shape == (64,)
    x, raw = featurize("text", {"text": "lights off", "embedding": [0.5] * 4}, (4,))
    assert x.tolist() == [0.5] * 4 and raw == "lights off"
    for item, field in (({"text": "  "}, "text"), ({}, "text"),
                        ({"text": "hi", "embedding": [1, 2]}, "embedding")):
        with pytest.raises(BadItem) as info:
            featurize("text", item, (4,))
        assert field in info.value.errors
