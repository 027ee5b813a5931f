"""Turning what people have into model inputs: tabular vectors, images and text.

A project declares its input kind. ``featurize`` checks one ingested item against the
project's input shape and returns the float32 features the model sees and, for text, the
raw string kept for display. Text uses stateless hashing of word and character n-grams
(scikit-learn's ``HashingVectorizer``), so a stream needs no refit; a caller may send its
own embedding with the text instead. Images come as nested lists or as base64 PNG/JPEG,
decoded with Pillow and scaled to [0, 1].
"""
from __future__ import annotations

import base64
import binascii
import io
from functools import lru_cache

import numpy as np

INPUT_KINDS = ("tabular", "image", "text")


class BadItem(ValueError):
    """An item that does not fit the project: ``errors`` maps a field to its messages."""

    def __init__(self, errors: dict):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in errors.items()))
        self.errors = errors


@lru_cache(maxsize=8)
def _vectorizers(n_features: int):
    from sklearn.feature_extraction.text import HashingVectorizer
    words = HashingVectorizer(n_features=n_features // 2, ngram_range=(1, 2),
                              alternate_sign=False, norm="l2")
    chars = HashingVectorizer(n_features=n_features - n_features // 2, analyzer="char_wb",
                              ngram_range=(3, 5), alternate_sign=False, norm="l2")
    return words, chars


def text_features(texts: list[str], n_features: int) -> np.ndarray:
    """Hashed word 1–2-grams and character 3–5-grams, one half of the features each."""
    words, chars = _vectorizers(int(n_features))
    both = np.hstack([words.transform(texts).toarray(), chars.transform(texts).toarray()])
    return (both / np.sqrt(2)).astype(np.float32)


def decode_image(data: str, shape: tuple[int, ...]) -> np.ndarray:
    """A base64 PNG/JPEG (optionally a ``data:`` URL) as an array of ``shape`` in [0, 1];
    resized to the project's height and width, converted to its channels."""
    from PIL import Image, UnidentifiedImageError
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise BadItem({"image": [f"not a base64 PNG or JPEG image ({type(exc).__name__})"]}) from None
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) == 3 else 1
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise BadItem({"image": [f"cannot make an image with {channels} channels"]})
    image = image.convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels.reshape(shape)


def featurize(kind: str, item: dict, shape: tuple[int, ...]) -> tuple[np.ndarray, str | None]:
    """``(x, raw)`` for one item of a project of input ``kind`` and ``shape``; ``BadItem``
    naming the fields that are wrong."""
    if kind == "text":
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadItem({"text": ["a non-empty string"]})
        if item.get("embedding") is not None:
            x = _numbers(item["embedding"], shape, "embedding")
        else:
            x = text_features([text], shape[0])[0]
        return x, text
    if item.get("text") is not None or item.get("embedding") is not None:
        raise BadItem({"text": ["only text projects take text"]})
    if kind == "image" and item.get("image") is not None:
        if not isinstance(item["image"], str):
            raise BadItem({"image": ["a base64 PNG or JPEG string"]})
        return decode_image(item["image"], shape), None
    if item.get("x") is None:
        wanted = "x (nested lists) or image (base64 PNG/JPEG)" if kind == "image" else "x"
        raise BadItem({"x": [f"required: {wanted}"]})
    if item.get("image") is not None:
        raise BadItem({"image": ["only image projects take images"]})
    return _numbers(item["x"], shape, "x"), None


def _numbers(value, shape: tuple[int, ...], field: str) -> np.ndarray:
    try:
        x = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadItem({field: [f"a nested list of numbers of shape {list(shape)}"]}) from None
    if x.shape != tuple(shape):
        raise BadItem({field: [f"shape {list(x.shape)} does not match input_shape "
                               f"{list(shape)}"]})
    if not np.isfinite(x).all():
        raise BadItem({field: ["NaN or infinite values"]})
    return x
