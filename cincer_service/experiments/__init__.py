"""Offline experiments on bundled data: the CINCER simulation, the detector audit, benchmarks.

``config`` holds the settings dataclasses (importable without TensorFlow, so the command
line parses and validates before loading the models); ``simulate``, ``audit``, ``bench``
and ``bench_detectors`` run the experiments; ``stats`` summarizes runs over seeds and
``plots`` draws them. The command-line wrappers live in ``cincer_service.commands``.
"""
