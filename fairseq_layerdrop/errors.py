"""The errors the prune and sweep tools report, and how text from a file or path enters them.

Every failure the user can cause is one line ``<tool>: error: ...`` and exit status 2. Text that
comes from the checkpoint or the command line (paths, zip member names, config keys, architecture
names, torch's own error text) goes through :func:`show`: control and format characters are
escaped and long text is shortened, so a file cannot add a line, move the cursor or forge a
message. :func:`one_line` is the last guard at the command-line boundary.
"""
import os
import unicodedata

# Unicode categories never printed raw: controls, format (bidi overrides), surrogates, private
# use, unassigned, line and paragraph separators
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
SHOWN_CHARS = 160  # longest piece of foreign text in a message
LINE_CHARS = 2000  # longest message


class CheckpointError(Exception):
    """A checkpoint or output path the tool cannot use; the message is one line."""


class PruneError(ValueError):
    """Bad request or unusable checkpoint content; the message is one line for the user."""


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape, e.g. in a path)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escaped(text: str) -> str:
    return "".join(_escape(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def show(text, limit: int = SHOWN_CHARS) -> str:
    """``text`` (str, bytes or path) escaped for a one-line message, at most ``limit`` characters
    (the middle is cut, so both the start of a path and its file name stay visible)."""
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    text = _escaped(str(text))
    if len(text) > limit:
        half = (limit - 3) // 2
        text = f"{text[:half]}...{text[-half:]}"
    return text


def one_line(message: str) -> str:
    """A whole message made one bounded line (already-escaped parts pass unchanged)."""
    return show(message, LINE_CHARS)
