"""HTTP-only clients of the labeling service: the Python client (``client``), a simulated
annotator (``annotator``), the benchmark (``bench``) and the ``python -m clients`` CLI
(``cli``, ``commands``, ``readers``)."""
