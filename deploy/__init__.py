"""Deployment: export GLASS / SLSG checkpoints to ONNX or OpenVINO with pre- and post-processing in the graph
(``deploy.export``), and score images with the exported file without torch (``deploy.infer``).

Importing this package does not import torch: ``deploy.infer`` must run where only numpy, Pillow and a runtime are
installed.
"""
from __future__ import annotations


def export_model(checkpoint, output, format: str = "onnx", **kwargs):
    """See ``deploy.export.export_model``."""
    from deploy.export import export_model as _export

    return _export(checkpoint, output, format=format, **kwargs)
