"""Model-only probe used to choose the training defaults (docs/results.md, wave 2).

Trains one classifier per development seed (100-104) on 200 training examples whose labels
carry ``RESIDUAL`` random noise, and prints weighted F1 on the rest of the training split
(true labels). The test split is never touched.

    .venv/bin/python docs/dev/fit_quality.py breast '{"schedule": "fixed", "max_epochs": 30}' 0.05
"""
import json
import sys

import numpy as np
from sklearn.metrics import f1_score

from cincer_service.datasets import inject_noise, load_dataset
from cincer_service.models import Classifier


def main(dataset: str, options: dict, residual: float) -> None:
    data = load_dataset(dataset, seed=0)
    scores, epochs = [], []
    for seed in (100, 101, 102, 103, 104):
        order = np.random.default_rng(seed).permutation(len(data.y_train))
        known, dev = order[:200], order[200:]
        y = data.y_train[known].copy()
        if residual:
            y, _ = inject_noise(y, data.n_classes, residual, "random", seed)
        clf = Classifier("fc", data.input_shape, data.n_classes, **{"seed": seed, **options})
        report = clf.fit(data.X_train[known], y)
        scores.append(f1_score(data.y_train[dev], clf.predict(data.X_train[dev]), average="weighted"))
        epochs.append(report.best_epoch or report.epochs)
    se = np.std(scores, ddof=1) / np.sqrt(len(scores))
    print(f"{dataset} {json.dumps(options)} residual {residual:.2f}: dev F1 {np.mean(scores):.3f} "
          f"± {se:.3f}, epochs {epochs}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]))
