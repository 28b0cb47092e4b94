"""One output name per input image, even when two inputs differ only by extension (``x.png`` and ``x.jpg``)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence


def output_stems(images: Sequence[Path], root: Path) -> dict[Path, Path]:
    """Each image's path relative to ``root`` without its extension (``a/x.png`` -> ``a/x``), or with it
    (``a/x.png``, ``a/x.jpg``) for inputs whose stems would collide. Append the output suffix to the result."""
    relative = {p: (p.relative_to(root) if p.is_relative_to(root) else Path(p.name)) for p in images}
    stems = {p: r.with_suffix("") for p, r in relative.items()}
    counts = Counter(stems.values())
    named = {p: (relative[p] if counts[stems[p]] > 1 else stems[p]) for p in images}
    if len(set(named.values())) < len(named):  # e.g. x.jpg beside x.png and x.jpg.png: keep every extension
        named = dict(relative)
    return named
