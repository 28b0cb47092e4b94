"""``main.py --config <results_path>/run_<...>.json``: the flags of a recorded run, for the parser to start from."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.errors import UserError


def recorded_flags(argv: list[str]) -> dict:
    """The ``args`` of the run record named by ``--config`` (empty without the flag)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return {}
    path = Path(known.config)
    if not path.is_file():
        raise UserError(f"--config: not found: {path}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--config: cannot read {path} as a run record ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("args"), dict):
        raise UserError(f"--config: {path} is not a run record (no 'args' object)")
    flags = dict(record["args"])
    for key in ("config", "method_given"):
        flags.pop(key, None)
    return flags
