"""TensorFlow's console noise and the device jobs run on, for the long-running commands.

``quiet_tensorflow()`` must run before anything imports TensorFlow: it sets TensorFlow's
logging variables (only where the environment does not set them already) and imports
TensorFlow with the lines it writes while loading (oneDNN, "Could not find cuda drivers",
absl's "All log messages before absl::InitializeLog()") kept off the console.
``describe_device()`` then says which device TensorFlow will use::

    quiet_tensorflow()
    print(describe_device()["summary"])     # "device: CPU (x86_64; no GPU visible ...)"

Set ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything TensorFlow logs again.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile

# Set with ``os.environ.setdefault``: a value the user exported wins.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",       # C++ logging: errors and below (the E0000 cuInit line)
    "TF_CPP_MAX_VLOG_LEVEL": "-1",     # no verbose logging
    "ABSL_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
}


def quiet_tensorflow() -> None:
    """Silence TensorFlow's logging; call it before TensorFlow is imported.

    Sets ``QUIET_ENV`` (``setdefault``), then imports TensorFlow. TensorFlow writes a few
    lines while it loads before its C++ logging reads ``TF_CPP_MIN_LOG_LEVEL``; with the
    level at 3 those are captured and dropped (shown again if the import fails). The Python
    loggers of TensorFlow and absl are set to errors only. Without TensorFlow installed it
    only sets the variables.
    """
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "3"
    if "tensorflow" not in sys.modules:
        try:
            with _stderr_captured(enabled=quiet):
                import tensorflow  # noqa: F401
        except ImportError:
            return
    if quiet:
        import logging
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging
            absl_logging.set_verbosity(absl_logging.ERROR)


def describe_device() -> dict:
    """The device TensorFlow runs jobs on in this process.

    ``{"device": "GPU" | "CPU", "name": ..., "count": number of such devices,
    "summary": one line for the console}``; the GPU's name comes from TensorFlow's device
    details (e.g. "NVIDIA H100 80GB HBM3"), the CPU's from ``/proc/cpuinfo`` or the
    machine type.
    """
    try:
        import tensorflow as tf
    except ImportError:
        return _cpu(0, "TensorFlow is not installed")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return _cpu(len(tf.config.list_physical_devices("CPU")), "no GPU visible to TensorFlow")
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
    except Exception:            # details are best effort; the device itself is known
        name = None
    name = name or gpus[0].name
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return {"device": "GPU", "name": name, "count": len(gpus),
            "summary": f"device: GPU {name}{more}"}


def _cpu(count: int, why: str) -> dict:
    name = _cpu_name()
    return {"device": "CPU", "name": name, "count": count,
            "summary": f"device: CPU ({name}; {why})"}


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


@contextlib.contextmanager
def _stderr_captured(enabled: bool):
    """File descriptor 2 goes to a temporary file in the block (C++ code writes there, not
    to ``sys.stderr``); what was captured is written back only if the block raises."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):       # no usable fd 2: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(2, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
