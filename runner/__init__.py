"""The application layer: the command line, the per-class run, evaluation, prediction and the outputs.

Flow (see docs/ARCHITECTURE.md): ``main.py`` -> ``runner.cli.main`` (one parse -> ``RunOptions`` + the method's
typed config) -> ``runner.run.run_all`` (plan every class, then per class: train, evaluate, calibrate the
threshold, write outputs) or ``runner.predict.run_predict``. Library packages (``common``, ``datasets``,
``metrics``, ``glass``, ``slsg``) never import this package.
"""
