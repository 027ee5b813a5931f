"""Settings of the offline experiments, with their defaults and their validation.

``SimulationConfig`` describes a ``simulate`` run (data, noise, strategies, loop settings),
``AuditConfig`` a detector ``audit`` run. Defaults shared with a service project (threshold,
strategy, bootstrap size, epochs, retrain mode, and per retrain mode the schedule,
standardization and damping) come from ``cincer_service.spec``; ``DEFAULTS_SETS`` names the
sets of training defaults that ``simulate --compare-defaults`` puts side by side.
Only name tuples are imported here, never TensorFlow: ``validate`` can run before any model
is built, and its ``ValueError`` messages are what the command line prints (exit 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..catalog import DETECTOR_NAMES, STRATEGY_NAMES
from ..datasets import DATASETS, NOISE_TYPES, TEXT_DATASETS
from ..spec import (
    DEFAULT_BOOTSTRAP_SIZE,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MONITOR,
    DEFAULT_PATIENCE,
    DEFAULT_STRATEGY,
    DEFAULT_THRESHOLD,
    MODEL_KINDS,
    MONITORS,
    PRE_WAVE2_TRAINING,
    RETRAIN_MODES,
    TRAINING_SCHEDULES,
    WAVE2_TRAINING,
    ModelSpec,
    RetrainPolicy,
    TrainingDefaults,
    training_defaults,
)

PROTOCOLS = ("cleaning", "ce-precision")
# Loop variants of ``--strategies``: (loop variant, counter-example strategy).
LOOP_VARIANTS = {"no_ce": ("no_ce", None), "drop_ce": ("drop_ce", DEFAULT_STRATEGY)}
AUDIT_DETECTORS = ("self_influence", "gd", "gc", "if", "tracin", "gd_class", "gc_class",
                   "if_class", "tracin_class", "euc", "cos", "dot", "margin", "mismatch",
                   "model_based", "cleanlab")


def strategy_plan(name: str) -> tuple[str, str | None]:
    """Map a ``--strategies`` item to ``(loop variant, counter-example strategy)``."""
    if name in LOOP_VARIANTS:
        return LOOP_VARIANTS[name]
    if name in STRATEGY_NAMES:
        return "cincer", name
    raise ValueError(f"unknown strategy {name!r}; choose from "
                     f"{', '.join(sorted([*STRATEGY_NAMES, *LOOP_VARIANTS]))}")


# Named sets of training defaults for ``simulate --compare-defaults``: a name maps a retrain
# mode to its ``TrainingDefaults``. Any ``schedule/std|raw/λ`` (``accuracy/std/10``) names a
# set that is the same in every mode.
DEFAULTS_SETS = {
    "old": lambda mode: PRE_WAVE2_TRAINING,      # --schedule accuracy --no-standardize --damping 1
    "wave2": lambda mode: WAVE2_TRAINING,        # validation / standardized / λ 10
    "new": training_defaults,                    # the spec's defaults for the mode
}


def defaults_set(name: str, mode: str) -> TrainingDefaults:
    """The training defaults that set ``name`` (``DEFAULTS_SETS`` or ``schedule/std|raw/λ``)
    gives under retrain ``mode``; ``ValueError`` with a readable message otherwise."""
    if name in DEFAULTS_SETS:
        return DEFAULTS_SETS[name](mode)
    parts = name.split("/")
    usage = (f"unknown defaults set {name!r}: give {', '.join(DEFAULTS_SETS)} or "
             "SCHEDULE/std|raw/DAMPING (e.g. accuracy/std/10)")
    if len(parts) != 3 or parts[0] not in TRAINING_SCHEDULES or parts[1] not in ("std", "raw"):
        raise ValueError(usage)
    try:
        damping = float(parts[2])
    except ValueError:
        raise ValueError(usage) from None
    if not damping > 0:
        raise ValueError(f"defaults set {name!r}: the damping must be positive")
    return TrainingDefaults(parts[0], parts[1] == "std", damping)


def input_kind(dataset: str) -> str:
    """How a service project would declare the data set: ``image``, ``text`` or ``tabular``."""
    if dataset == "digits":
        return "image"
    return "text" if dataset in TEXT_DATASETS else "tabular"


def _raise_first(checks) -> None:
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@dataclass
class SimulationConfig:
    dataset: str = "breast"
    model: str = ModelSpec.kind
    noise: float = 0.2
    noise_type: str = "random"
    strategies: list[str] = field(default_factory=lambda: [DEFAULT_STRATEGY])
    threshold: float = DEFAULT_THRESHOLD
    bootstrap: int = DEFAULT_BOOTSTRAP_SIZE
    iterations: int = 100
    seeds: list[int] = field(default_factory=lambda: [0])
    retrain: str = RetrainPolicy.mode
    protocol: str = "cleaning"
    damping: float | None = None                # None: the retrain mode's (spec.TRAINING_DEFAULTS)
    oracle_noise: float = 0.0
    skip_confirmed: bool = True        # never show a human-confirmed example as counter-example
    max_epochs: int = DEFAULT_MAX_EPOCHS
    schedule: str | None = None                 # validation | accuracy | fixed; None: the mode's
    early_stop_accuracy: float | None = None    # schedule "accuracy": None is the kind's default
    monitor: str = DEFAULT_MONITOR              # schedule "validation": loss | errors
    patience: int = DEFAULT_PATIENCE            # schedule "validation": epochs without improvement
    refit: bool = True                          # schedule "validation": retrain on all data
    standardize: bool | None = None             # None: the mode's, for tabular data only
    n_samples: int | None = None

    def training(self) -> TrainingDefaults:
        """The schedule, standardization and damping this run trains with: the retrain
        mode's defaults (``spec.training_defaults``) where this config leaves them ``None``;
        images and text are never standardized unless asked (as in a service project)."""
        defaults = training_defaults(self.retrain)
        standardize = self.standardize
        if standardize is None:
            standardize = defaults.standardize and input_kind(self.dataset) == "tabular"
        return TrainingDefaults(self.schedule or defaults.schedule, bool(standardize),
                                defaults.damping if self.damping is None else self.damping)

    def with_training(self, training: TrainingDefaults) -> "SimulationConfig":
        """This config trained as ``training`` says: its standardization applies to tabular
        data only, as in a service project."""
        return replace(self, schedule=training.schedule, damping=training.damping,
                       standardize=training.standardize and input_kind(self.dataset) == "tabular")

    def resolved(self) -> "SimulationConfig":
        """This config with the mode-dependent settings filled in (``training``)."""
        training = self.training()
        return replace(self, schedule=training.schedule, standardize=training.standardize,
                       damping=training.damping)

    def validate(self) -> None:
        """Raise ``ValueError`` with a readable message on any bad setting."""
        _raise_first([
            (self.dataset in DATASETS, f"unknown dataset {self.dataset!r}"),
            (self.model in MODEL_KINDS, f"unknown model {self.model!r}"),
            (self.noise_type in NOISE_TYPES, f"unknown noise type {self.noise_type!r}"),
            (0.0 <= self.noise <= 1.0, "--noise must lie in [0, 1]"),
            (self.retrain in RETRAIN_MODES, "--retrain must be scratch or warm"),
            (self.protocol in PROTOCOLS, f"--protocol must be one of {', '.join(PROTOCOLS)}"),
            (self.bootstrap > 0 and self.iterations >= 0, "--bootstrap must be > 0, --iterations >= 0"),
            (0.0 <= self.oracle_noise < 1.0, "--oracle-noise must lie in [0, 1)"),
            (self.monitor in MONITORS, f"--monitor must be one of {', '.join(MONITORS)}"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.schedule is None or self.schedule in TRAINING_SCHEDULES,
             f"--schedule must be one of {', '.join(TRAINING_SCHEDULES)}"),
            (self.damping is None or self.damping > 0, "--damping must be positive"),
            (bool(self.strategies) and bool(self.seeds), "give at least one strategy and one seed"),
            (not (self.model == "cnn" and self.dataset != "digits"), "cnn needs image data (digits)"),
        ])
        for name in self.strategies:
            strategy_plan(name)


@dataclass
class AuditConfig:
    dataset: str = "digits"
    model: str = ModelSpec.kind
    noise: float = 0.2
    noise_type: str = "random"
    detectors: list[str] = field(default_factory=lambda: list(AUDIT_DETECTORS))
    clean_size: int = 500
    seeds: list[int] = field(default_factory=lambda: [0])
    segments: int = 10
    epochs_per_segment: int = 10
    damping: float = 1e-3              # Hessian/Fisher damping of the detectors
    min_per_class: int = 5
    n_samples: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` with a readable message for any bad setting."""
        unknown = [d for d in self.detectors if d not in DETECTOR_NAMES]
        _raise_first([
            (self.dataset in DATASETS,
             f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}"),
            (self.model in MODEL_KINDS,
             f"unknown model {self.model!r}; choose one of {', '.join(MODEL_KINDS)}"),
            (self.model != "cnn" or self.dataset == "digits",
             "the cnn model needs image inputs: use --dataset digits"),
            (self.noise_type in NOISE_TYPES,
             f"unknown noise type {self.noise_type!r}; choose one of {', '.join(NOISE_TYPES)}"),
            (0.0 < self.noise < 1.0,
             "--noise must lie strictly between 0 and 1 (the metrics need planted errors)"),
            (bool(self.detectors), "--detectors is empty"),
            (not unknown, f"unknown detector(s) {', '.join(unknown)}; choose from "
                          f"{', '.join(sorted(DETECTOR_NAMES))}"),
            (len(set(self.detectors)) == len(self.detectors), "--detectors lists a detector twice"),
            (self.clean_size >= 1, "--clean-size must be at least 1"),
            (bool(self.seeds), "--seeds is empty"),
            (self.segments >= 1 and self.epochs_per_segment >= 1,
             "--segments and --epochs-per-segment must be positive"),
            (self.damping > 0, "--damping must be positive"),
        ])
        if "cleanlab" in self.detectors:
            from ..detectors import cleanlab_available
            if not cleanlab_available():
                raise ValueError("detector 'cleanlab' needs cleanlab: "
                                 "pip install 'cincer-service[bench]'")
