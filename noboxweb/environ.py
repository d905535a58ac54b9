"""Numbers read from an environment, without Django: the one reader behind the settings' typed
helpers (noboxweb/env.py, which turns its ValueError into ImproperlyConfigured) and the Nobox
simulator (chat/nobox/simulator.py, which runs where Django is not set up)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

N = TypeVar("N", int, float)


def env_number(
    environ: Mapping[str, str],
    name: str,
    parse: Callable[[str], N],
    default: N,
    *,
    minimum: N | None = None,
) -> N:
    """`environ[name]` parsed by `parse` (int or float); `default` when unset or blank.
    Raises ValueError, naming the variable, for a value that does not parse or is below
    `minimum`."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ValueError(f"{name} must be {kind}, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value
