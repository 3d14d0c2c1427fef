"""Raw bytes -> text: byte order marks, UTF-8 (strict, then lenient), BOM-less UTF-16, GB18030.

A file that is not usable text raises ``Undecodable`` with the reason the caller reports as
``Skipped``; nothing here raises anything else for bad bytes.
"""

from __future__ import annotations

import re


class Undecodable(Exception):
    """Raised with the Skipped reason when bytes are not usable text."""


SNIFF_BYTES = 8192

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 LE one.
    (b"\xff\xfe\x00\x00", "utf-32-le", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le", "utf-16"),
    (b"\xfe\xff", "utf-16-be", "utf-16"),
)

# Control characters that never occur in real text; \t \n \r \f \v and ESC
# (ANSI colours in pasted terminal output) are tolerated.
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")

# Characters str.splitlines() treats as line breaks but "\n"-splitting does
# not; left in, they would make downstream code disagree with line_map.
_ODD_BREAKS = str.maketrans({c: " " for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def _bomless_utf16(sample: bytes) -> str | None:
    """Guess BOM-less UTF-16 from where the NUL bytes sit.

    ASCII-heavy UTF-16 has a NUL in every other byte; a binary file has them
    scattered on both parities.  This is what lets the NUL test tell binary
    files from UTF-16 text that lost its BOM.
    """
    even, odd = sample[0::2], sample[1::2]
    if not even or not odd:
        return None
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.3 and even_nul < 0.01:
        return "utf-16-le"
    if even_nul > 0.3 and odd_nul < 0.01:
        return "utf-16-be"
    return None


def decode(raw: bytes) -> tuple[str, str, list[str]]:
    """Return ``(text, encoding, warnings)`` or raise ``Undecodable`` with the reason.

    Order matters: BOMs are authoritative; then UTF-8 (strict, so GBK bytes
    fail it reliably); GB18030 last because it accepts almost any byte soup
    and would otherwise swallow UTF-8.  A UTF-8 file with a few corrupt bytes
    (a bad copy/paste, a truncated last character) must not be mistaken for
    GB18030 and turned into mojibake, hence ``_lenient_utf8``.
    """
    for bom, codec, label in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(codec), label, []
            except UnicodeDecodeError:
                if codec == "utf-8":
                    lenient = _lenient_utf8(raw[len(bom):], force=True)
                    if lenient:
                        return lenient[0], label, lenient[1]
                raise Undecodable(f"invalid {label} after byte order mark") from None
    sample = raw[:SNIFF_BYTES]
    if b"\x00" in sample:
        codec = _bomless_utf16(sample[: len(sample) // 2 * 2])
        if codec is None:
            raise Undecodable("binary file")
        try:
            return raw.decode(codec), "utf-16", []
        except UnicodeDecodeError:
            raise Undecodable("binary file") from None
    try:
        return raw.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    lenient = _lenient_utf8(raw, force=False)
    if lenient:
        return lenient[0], "utf-8", lenient[1]
    try:
        return raw.decode("gb18030"), "gb18030", []
    except UnicodeDecodeError:
        pass
    lenient = _lenient_utf8(raw, force=True)
    if lenient:
        return lenient[0], "utf-8", lenient[1]
    raise Undecodable("cannot decode as UTF-8, UTF-16 or GB18030")


def _lenient_utf8(raw: bytes, force: bool) -> tuple[str, list[str]] | None:
    """Decode mostly-valid UTF-8, replacing the few bad bytes.

    Without ``force`` the file must be overwhelmingly real UTF-8 (GBK text
    essentially never forms valid multi-byte UTF-8); with it, any file with
    at most 1% damage is accepted, as the last resort before giving up.
    """
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
    if bad <= 0:
        return None
    good = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    if good >= 20 * bad or (force and bad <= len(text) // 100):
        return text, [f"{bad} invalid UTF-8 byte sequence(s) replaced with U+FFFD"]
    return None


def looks_binary(text: str) -> bool:
    head = text[:SNIFF_BYTES]
    return bool(head) and len(_BAD_CONTROL.findall(head)) > max(8, len(head) // 20)


def split_lines(text: str) -> list[str]:
    """Source lines as line numbers count them: CRLF/CR normalised, odd breaks made spaces."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_ODD_BREAKS).split("\n")
