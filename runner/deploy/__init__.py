"""Deployment: export GLASS / SLSG checkpoints to ONNX or OpenVINO with pre- and post-processing in the graph
(``runner.deploy.export``), and score images with the exported file without torch (``runner.deploy.infer``, also a
standalone script).

Importing this package (and ``runner``) does not import torch: ``runner.deploy.infer`` must run where only numpy,
Pillow and a runtime are installed (``python -m runner.deploy.infer`` or a copy of ``infer.py``).
"""
from __future__ import annotations


def export_model(checkpoint, output, format: str = "onnx", **kwargs):
    """See ``runner.deploy.export.export_model``."""
    from runner.deploy.export import export_model as _export

    return _export(checkpoint, output, format=format, **kwargs)
