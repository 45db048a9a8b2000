"""How counts are worded in messages: `1 change`, `2 changes`, never `1 changes` or `2 change(s)`.

Every log line, status message and command output that shows a count with its noun goes
through `plural`, so that the rule lives in one place.
"""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless `count` is 1 (`0 events`, `1 event`).

    `plural_noun` is for nouns whose plural is not `noun + "s"` (`retry`, `retries`).
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun if plural_noun is not None else noun + 's'}"
