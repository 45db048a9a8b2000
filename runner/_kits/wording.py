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


# Characters that would end or rewrite a line of text output, or mislead a reader of it:
# controls (C0, DEL, C1: newline, carriage return, escape sequences), the Unicode line and
# paragraph separators, and the bidirectional overrides and isolates ("Trojan source").
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` safe to put in one line of text output: what could break or forge the line is
    escaped as Python does (`\\n`, `\\x1b`, `\\u2028`), and a byte of a file name that is not
    UTF-8 (decoded by Python as a lone surrogate, `\\udcff`) is shown as the byte, `\\xff`.

    The one rule for file names and messages in `check`'s text and github output and in the
    text log. Backslashes are left as they are: `a\\nb.yaml` may be that name or a name with a
    newline, a price paid so that messages that quote values (`'a\\nb'`) read as they did.
    """
    if text.isprintable():  # the common case, at C speed (a space counts as printable)
        return text
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029) or char in _BIDI_CONTROLS:
        return f"\\u{code:04x}"
    return char
