"""Meshtastic node numbers and their written forms: 3047284737, !b5a1e001, 0xb5a1e001."""

from __future__ import annotations

import re


def parse_node(text: str) -> int:
    t = text.strip().lower()
    try:
        if re.fullmatch(r"![0-9a-f]{1,8}", t):
            num = int(t[1:], 16)
        elif re.fullmatch(r"0x[0-9a-f]{1,8}", t):
            num = int(t, 16)
        elif re.fullmatch(r"\d{1,10}", t):
            num = int(t)
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{text!r} is not a node: use !b5a1e001, 0xb5a1e001 or a decimal number") from None
    if not 0 < num < 0xFFFFFFFF:
        raise ValueError(f"{text!r} is not a node number (1 to 4294967294)")
    return num


def node_id(num: int) -> str:
    return f"!{num:08x}"
