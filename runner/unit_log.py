"""Every line a work unit prints, prefixed with its rank and unit: ``[rank 1 unit mvtec_brick/0] ...``, so the
interleaved output of several ranks stays readable (one line per rank per epoch from the trainers)."""
from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator, TextIO


class PrefixedLines(io.TextIOBase):
    """A text stream that writes each complete line to ``target`` with ``prefix`` in front, flushing per line."""

    def __init__(self, target: TextIO, prefix: str):
        self.target, self.prefix, self.pending = target, prefix, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.target.write(f"{self.prefix} {line}\n" if line else "\n")
        if lines:
            self.target.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.target.write(f"{self.prefix} {self.pending}\n")
            self.pending = ""
        self.target.flush()


@contextlib.contextmanager
def prefixed_output(prefix: str) -> Iterator[None]:
    stream = PrefixedLines(sys.stdout, prefix)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def unit_prefix(rank: int, name: str, seed: int) -> str:
    return f"[rank {rank} unit {name}/{seed}]"
