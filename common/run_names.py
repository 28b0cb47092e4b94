"""Unique names for run records: several runs started in the same second never overwrite each other's record."""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


def run_record_path(results_path: Path, method: str) -> Path:
    """``<results>/run_<method>_<YYYYmmdd-HHMMSS>_<pid>_<6 hex>.json`` (sorts by start time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(results_path) / f"run_{method}_{stamp}_{os.getpid()}_{secrets.token_hex(3)}.json"
