"""Calendar sources: one module per backend behind :class:`syncd.sources.base.Source`."""

from __future__ import annotations

import importlib

from syncd.errors import ConfigError
from syncd.sources.base import ChangeSet, Source, SourceOptions, SyncRequest, Window

# kind -> "module:Class"; modules are imported only when a config uses them, so an ICS-only
# deployment never imports exchangelib.
BACKENDS: dict[str, str] = {
    "memory": "syncd.sources.memory:MemorySource",
    "ics": "syncd.sources.ics:IcsSource",
    "caldav": "syncd.sources.caldav:CalDavSource",
    "ews": "syncd.sources.ews.source:EwsSource",
    "graph": "syncd.sources.graph.source:GraphSource",
}


def load(kind: str) -> type[Source]:
    """The Source class for a config ``kind``."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown source kind {kind!r}; expected one of {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Source] = getattr(module, cls_name)
    return cls


__all__ = ["BACKENDS", "ChangeSet", "Source", "SourceOptions", "SyncRequest", "Window", "load"]
