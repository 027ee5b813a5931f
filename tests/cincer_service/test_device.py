"""``cincer_service.device``: TensorFlow quiet before it loads, and the device jobs use."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cincer_service import device
from cincer_service.device import QUIET_ENV, describe_device, quiet_tensorflow

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("oneDNN", "cuda drivers", "cuInit", "absl::InitializeLog", "cpu_feature_guard")

# Records TF_CPP_MIN_LOG_LEVEL at the moment anything starts importing tensorflow.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    seen = {}

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" and "level" not in seen:
                seen["level"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
            return None

    sys.meta_path.insert(0, Watch())
    from cincer_service.device import describe_device, quiet_tensorflow
    assert "tensorflow" not in sys.modules
    quiet_tensorflow()
    import tensorflow as tf
    info = describe_device()
    tf.constant([1.0, 2.0]) + 1.0                  # a first op: device set-up logs here
    print(json.dumps({"level": seen.get("level"), "info": info}))
""")


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_", "GRPC_"))}


def test_quiet_tensorflow_sets_the_level_before_tensorflow_loads_and_the_console_stays_clean():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=_clean_env(), cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["level"] == "3"
    assert result["info"]["device"] in ("GPU", "CPU")
    for noise in NOISE:
        assert noise not in done.stderr, (noise, done.stderr)


def test_a_level_the_user_set_wins(monkeypatch):
    for name in QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert all(os.environ[name] == value for name, value in QUIET_ENV.items()
               if name != "TF_CPP_MIN_LOG_LEVEL")


def test_describe_device_agrees_with_tensorflow():
    import tensorflow as tf
    info = describe_device()
    gpus = tf.config.list_physical_devices("GPU")
    assert info["device"] == ("GPU" if gpus else "CPU")
    assert info["count"] >= 1 and isinstance(info["name"], str) and info["name"]
    assert info["summary"].startswith(f"device: {info['device']} ")
    assert "\n" not in info["summary"]


def test_a_gpu_is_named_from_its_device_details(monkeypatch):
    import tensorflow as tf

    class FakeGpu:
        name = "/physical_device:GPU:0"
        device_type = "GPU"

    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [FakeGpu(), FakeGpu()] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda d: {"device_name": "NVIDIA H100 80GB HBM3"})
    info = describe_device()
    assert info == {"device": "GPU", "name": "NVIDIA H100 80GB HBM3", "count": 2,
                    "summary": "device: GPU NVIDIA H100 80GB HBM3 (+1 more)"}


def test_captured_stderr_is_dropped_on_success_and_shown_on_failure(capfd):
    with device._stderr_captured(enabled=True):
        os.write(2, b"loading noise\n")
    assert "loading noise" not in capfd.readouterr().err
    with pytest.raises(RuntimeError):
        with device._stderr_captured(enabled=True):
            os.write(2, b"why it failed\n")
            raise RuntimeError("import failed")
    assert "why it failed" in capfd.readouterr().err
    os.write(2, b"after\n")                         # fd 2 is back where it was
    assert "after" in capfd.readouterr().err
