"""Names from outside (file names, argv, reprs, data files) made safe for where they are shown.

On Linux a name is bytes: Python carries the bytes that are not UTF-8 as lone surrogates
(``os.fsdecode``), which no UTF-8 writer accepts, and a name may hold control characters that
a terminal obeys (clear screen, window title, OSC 52 clipboard) or that XML 1.0 forbids. Every
writer of a name goes through one of these, for its context. Pure Python and cheap to import:
a profiled program imports it (FUNC span names).

>>> utf8_text("caf\\udce9.txt")  # os.fsdecode(b"caf\\xe9.txt")
'caf\\\\xe9.txt'
>>> terminal_text("evil\\x1b]52;c;aGk=\\x07")
'evil\\\\x1b]52;c;aGk=\\\\x07'
>>> xml_text("a\\x00<b>")
'a\\\\x00&lt;b&gt;'
>>> math_free_text("$\\\\alpha$")
'\\\\$\\\\alpha\\\\$'

:func:`short_path` is how the three packages show a source file's name (reports, peak tables,
allocation sites): relative to the current folder when it lies below it.
"""

from __future__ import annotations

import os
import re

# Patterns as strings, compiled by re's cache on first use: a profiled program imports this
# module, and most programs never need one.
# Lone surrogates: the bytes os.fsdecode could not decode (U+DC80..U+DCFF), or any other.
_SURROGATE = "[\ud800-\udfff]"
# What a terminal acts on: C0 controls but tab and newline, DEL, C1 controls; and surrogates.
_TERMINAL = "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]"
# What XML 1.0 forbids (and C1 controls, which a viewer shows as nothing): escaped visibly.
_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte from os.fsdecode: the byte itself
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def utf8_text(text: str) -> str:
    """``text`` as any UTF-8 writer takes it: undecodable bytes as ``\\xNN``; else unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return re.sub(_SURROGATE, _escape, text)


def terminal_text(text: str) -> str:
    """``text`` safe to print to a terminal: control characters and bad bytes as ``\\xNN``."""
    return re.sub(_TERMINAL, _escape, text)


def terminal_line(text: str) -> str:
    """As :func:`terminal_text`, and the line breaks too (a name shown on one line)."""
    return terminal_text(text).replace("\n", "\\n").replace("\t", "\\t")


def xml_chars(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids written as visible ``\\xNN`` escapes."""
    return re.sub(_XML, _escape, text)


def xml_text(text: str) -> str:
    """``text`` as XML/HTML character data or a quoted attribute value (XML 1.0 valid)."""
    text = xml_chars(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;").replace("'", "&#x27;")


def math_free_text(text: str) -> str:
    """``text`` as matplotlib shows it literally: ``$`` escaped, so no mathtext is parsed."""
    return xml_chars(text).replace("$", "\\$")


def short_path(filename: str) -> str:
    """Return ``filename`` relative to the current folder when it is absolute and below it;
    any other name (relative, ``<string>``, another folder's) as it is.

    >>> short_path(os.path.join(os.getcwd(), "app", "main.py"))
    'app/main.py'
    >>> short_path("/elsewhere/x.py")  # outside the current folder: unchanged
    '/elsewhere/x.py'
    >>> short_path("<frozen runpy>"), short_path("./job.py")
    ('<frozen runpy>', './job.py')
    """
    if os.path.isabs(filename):
        try:
            relative = os.path.relpath(filename)
        except ValueError:
            return filename
        if not relative.startswith(".."):
            return relative
    return filename
