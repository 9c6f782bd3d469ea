"""TeamCity service messages: `##teamcity[name key='value' ...]`, one per line.

Why not the teamcity-messages package: its escaping leaves non-ASCII as it is (TeamCity's
|0xNNNN escape is not used), so names reach TeamCity only if the agent's console encoding
matches ours; and it writes to sys.stdout's byte buffer behind the text layer that the
console report writes to. The escaping is the ten lines below, from TeamCity's table:
' | [ ] newline and carriage return get a bar; every other character outside printable
ASCII is |0xNNNN, its UTF-16 code unit (a character beyond the BMP is two of them, as
TeamCity, in Java, reads it back).
"""
from __future__ import annotations

import re

_BAR = {"'": "|'", "|": "||", "[": "|[", "]": "|]", "\n": "|n", "\r": "|r"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def escape(value: str) -> str:
    out = []
    for char in value:
        if char in _BAR:
            out.append(_BAR[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            data = char.encode("utf-16-be", "surrogatepass")
            out.extend(f"|0x{data[i]:02x}{data[i + 1]:02x}" for i in range(0, len(data), 2))
    return "".join(out)


def message(kind: str, /, **attributes: str | int | None) -> str:
    """One message, without its line end; attributes that are None are left out."""
    if not _NAME.fullmatch(kind):
        raise ValueError(f"not a service message name: {kind!r}")
    parts = [f"{key}='{escape(str(value))}'" for key, value in attributes.items()
             if value is not None]
    return f"##teamcity[{kind}{''.join(' ' + part for part in parts)}]"
