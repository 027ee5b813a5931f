import json
import subprocess
import sys

import pytest

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


API_PROCESS = """
import json, sys, threading

class Watch:                      # the threads that import TensorFlow, in order
    importers = []

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            Watch.importers.append(threading.current_thread().name)

sys.meta_path.insert(0, Watch())
import api
from cincer_service.service import Settings
api.create_app(Settings(data_dir=sys.argv[1], redis_url=sys.argv[2] or None))
for thread in threading.enumerate():
    if thread.name == "cincer-register":
        thread.join(120)
print(json.dumps(Watch.importers))
"""


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"], ids=["embedded", "celery"])
def test_the_api_process_does_not_load_tensorflow(tmp_path, redis_url):
    """Building the app (and so every request path) never imports TensorFlow. Only the
    embedded worker's registration thread does, to describe the device its jobs run on; an
    API process with a broker never does."""
    out = subprocess.run([sys.executable, "-c", API_PROCESS, str(tmp_path), redis_url],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    importers = json.loads(out.stdout.strip().splitlines()[-1])
    assert importers == (["cincer-register"] if not redis_url else [])


def test_training_schedules_match_the_models():
    from cincer_service import spec
    from cincer_service.models import SCHEDULES
    assert spec.TRAINING_SCHEDULES == SCHEDULES and spec.DEFAULT_SCHEDULE in SCHEDULES
