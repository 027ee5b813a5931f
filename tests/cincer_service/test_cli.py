"""The ``cincer-service`` parser: core commands registered, defaults from the spec, no TF."""
import subprocess
import sys

from cincer_service.cli import CORE_COMMANDS, build_parser
from cincer_service.spec import (
    DEFAULT_BOOTSTRAP_SIZE,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_STRATEGY,
    DEFAULT_THRESHOLD,
)


def test_core_commands_are_the_command_modules():
    assert all(name.startswith("cincer_service.commands.") for name in CORE_COMMANDS)
    parser = build_parser()
    for command in ("simulate", "bench", "audit"):
        assert parser.parse_args([command]).command == command


def test_simulate_defaults_come_from_the_spec():
    args = build_parser().parse_args(["simulate"])
    assert args.threshold == DEFAULT_THRESHOLD and args.bootstrap == DEFAULT_BOOTSTRAP_SIZE
    assert args.max_epochs == DEFAULT_MAX_EPOCHS
    # left to the command: the default strategy list, and the retrain mode's schedule,
    # standardization and damping (spec.TRAINING_DEFAULTS; test_training_defaults.py)
    assert args.strategies is None and DEFAULT_STRATEGY
    assert args.schedule is None and args.standardize is None and args.damping is None


def test_parsing_does_not_load_tensorflow():
    code = ("import sys; from cincer_service.cli import build_parser; "
            "build_parser().parse_args(['audit']); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
