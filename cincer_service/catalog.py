"""Names of the registered counter-example strategies and detectors.

Importable without TensorFlow, so a process that only validates requests (the API under
gunicorn) never loads it. ``tests/cincer_service/test_catalog.py`` keeps these tuples equal
to the registries in ``counterexamples`` and ``detectors``.
"""
STRATEGY_NAMES = ("top_fisher", "full_fisher", "practical_fisher", "influence",
                  "influence_lissa", "nearest")

# Scoring detectors (``detectors.DETECTORS``); ``near_duplicates`` reports pairs instead.
DETECTOR_NAMES = ("self_influence", "self_influence_cg", "gd", "gc", "if", "tracin",
                  "gd_class", "gc_class", "if_class", "tracin_class", "margin", "mismatch",
                  "euc", "cos", "dot", "model_based", "cleanlab")
