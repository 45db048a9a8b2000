"""JSON objects kept as the text they were stored as.

`StoredJson` is a read-only `Mapping` over the text of a JSON object: it parses the text
on first use (and keeps the result), and hands the text itself to encoders that copy it
into a larger document unchanged. The outbox returns its events' attributes and data this
way, so that delivery's structured and batch encodings splice the stored text instead of
parsing and re-serializing every event (measured: ~5 us/event of `json.loads`, and the
garbage collector's work on the parsed objects, in a send path of ~15 us/event).

The text is trusted to be what the outbox wrote (`json.dumps` of a dict); parsing it is
what checks it. Parsing twice from two threads is harmless: both keep an equal result.
"""

from __future__ import annotations

import json
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any


class StoredJson(Mapping[str, Any]):
    """A JSON object as its stored `text`, read as a mapping on demand.

    Reading it raises `ValueError` when the text is not a JSON object.
    """

    __slots__ = ("_parsed", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed: dict[str, Any] | None = None

    def _value(self) -> dict[str, Any]:
        parsed = self._parsed
        if parsed is None:
            value = json.loads(self.text)
            if not isinstance(value, dict):
                raise ValueError(f"stored JSON is a {type(value).__name__}, not an object")
            self._parsed = parsed = value
        return parsed

    def __getitem__(self, key: str) -> Any:
        return self._value()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __contains__(self, key: object) -> bool:
        return key in self._value()

    # The dict's own views: `dict(stored)` and `.items()` then run at C speed.
    def keys(self) -> KeysView[str]:
        return self._value().keys()

    def items(self) -> ItemsView[str, Any]:
        return self._value().items()

    def values(self) -> ValuesView[Any]:
        return self._value().values()

    def __repr__(self) -> str:
        return f"StoredJson({self.text!r})"
