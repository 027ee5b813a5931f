"""The core ``cincer-service`` subcommands: argparse in, experiment run, JSON or table out.

Each module exposes ``register_command(subparsers)``; ``cincer_service.cli`` lists them in
``CORE_COMMANDS``. A command builds the experiment's config from its flags, turns any
``ValueError`` from validation or the run into a ``UsageError`` (exit status 2) and
imports the experiment (TensorFlow) only when it runs, so ``--help`` stays fast.
"""
