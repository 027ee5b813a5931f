"""Name registries for pluggable classes (counter-example strategies, detectors)."""
from __future__ import annotations


class Registry(dict):
    """A ``name -> class`` mapping with a decorator to fill it and a factory to use it.

    ``kind`` names what is registered, for the error on an unknown name.
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        """Class decorator: register the class under ``name`` (and set ``cls.name``)."""
        def deco(cls):
            cls.name = name
            self[name] = cls
            return cls
        return deco

    def create(self, name: str, **options):
        """Instantiate the class registered as ``name``; ``ValueError`` on an unknown name."""
        try:
            cls = self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of "
                             f"{', '.join(sorted(self))}") from None
        return cls(**options)
