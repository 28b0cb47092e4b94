"""The methods the command line knows: name -> class implementing ``common.method.Method``."""
from __future__ import annotations

from common.errors import UserError
from glass.method import GlassMethod
from slsg.method import SLSGMethod

METHODS: dict[str, type] = {"glass": GlassMethod, "slsg": SLSGMethod}


def method_class(name: str) -> type:
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"--method: unknown method {name!r}; choose from {', '.join(sorted(METHODS))}") from None
