"""Protocol dissectors: payload prefixes -> facts. They state facts and never judge."""

from __future__ import annotations

from analyzer.dissect.base import Datagram, Dissector, Facts, FlowPayload, StreamPrefix

__all__ = ["Datagram", "Dissector", "Facts", "FlowPayload", "StreamPrefix", "register", "registered"]

_REGISTRY: list[Dissector] = []


def register(dissector: Dissector) -> Dissector:
    """Add a dissector. Later registrations are tried after earlier ones."""
    if any(d.name == dissector.name for d in _REGISTRY):
        raise ValueError(f"a dissector named {dissector.name!r} is already registered")
    _REGISTRY.append(dissector)
    return dissector


def registered() -> tuple[Dissector, ...]:
    """Registered dissectors, importing the built-in ones on first use."""
    _load_builtins()
    return tuple(_REGISTRY)


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in ("analyzer.dissect.tls", "analyzer.dissect.quic", "analyzer.dissect.dtls"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a dissector not written yet; keep the rest working
            if exc.name != module:
                raise
