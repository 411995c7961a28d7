"""Package attributes imported on first use (PEP 562), so that importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(namespace: dict[str, Any], lazy: Mapping[str, str]) -> tuple[Callable[[str], Any],
                                                                                  Callable[[], list[str]]]:
    """A module's `__getattr__` and `__dir__` for the names in `lazy` (name -> module defining it):
    `__getattr__, __dir__ = lazy_attributes(globals(), {...})`. A name is imported when first read,
    then kept in the module's namespace."""

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
