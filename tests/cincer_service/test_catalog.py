import subprocess
import sys

from cincer_service.catalog import (
    DETECTOR_NAMES,
    PAIR_DETECTOR_NAMES,
    SCORING_DETECTOR_NAMES,
    STRATEGY_NAMES,
)
from cincer_service.counterexamples import STRATEGIES
from cincer_service.detectors import DETECTORS


def test_catalog_matches_the_registries():
    assert sorted(STRATEGY_NAMES) == sorted(STRATEGIES)
    assert sorted(DETECTOR_NAMES) == sorted(DETECTORS)
    assert sorted(SCORING_DETECTOR_NAMES) == sorted(
        name for name, cls in DETECTORS.items() if cls.output == "scores")
    assert sorted(PAIR_DETECTOR_NAMES) == sorted(
        name for name, cls in DETECTORS.items() if cls.output == "pairs")


def test_the_api_process_does_not_load_tensorflow():
    code = ("import sys, api; from cincer_service.service import Settings; "
            "app = api.create_app(Settings(data_dir=sys.argv[1])); "
            "print('tensorflow' in sys.modules)")
    import tempfile
    with tempfile.TemporaryDirectory() as data_dir:
        out = subprocess.run([sys.executable, "-c", code, data_dir], capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_training_schedules_match_the_models():
    from cincer_service import spec
    from cincer_service.models import SCHEDULES
    assert spec.TRAINING_SCHEDULES == SCHEDULES and spec.DEFAULT_SCHEDULE in SCHEDULES
