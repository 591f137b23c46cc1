# ruff: noqa: RUF002  (the Greek letters in the docstrings are the point)
"""A JKS alias: lower-cased exactly as the JDK's JKS does, and whether a JKS can hold it portably.

Java's JKS keys every entry by ``alias.toLowerCase(Locale.ENGLISH)`` (storing and looking up), so
``keytool -alias NAME`` and Tomcat's ``certificateKeyAlias`` find an entry only under that exact form.
It differs from Python's ``str.lower()`` in one place, the capital sigma (U+03A3): both map it to the
final form (U+03C2) at the end of a word, but Java's "word" is the legacy word BreakIterator's
(``ConditionalSpecialCasing.isFinalCased``): letters and digits alternate inside one word, and a dash,
an underscore (any connector), an apostrophe, a quotation mark or a period between two letters keeps
them in one word, while Python
applies Unicode's Final_Sigma (``ΣΑΣ-ca``: Java ``σασ-ca``, Python ``σας-ca``). The rule here was read
off the JDK's behaviour (tests/java/LowerCase.java is the oracle in tests/test_jks_aliases.py).
Everything else is the per-character mapping both share (İ, U+0130, becomes ``i`` + U+0307 in both).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

__all__ = ["MAX_ALIAS_BYTES", "alias_unfit", "java_lower", "modified_utf8", "read_modified_utf8"]

MAX_ALIAS_BYTES = 0xFFFF  # DataOutputStream.writeUTF's two-byte length
_SIGMA = "\u03a3"
_UNNAMEABLE = re.compile("[\0\ud800-\udfff]")  # NUL, a lone surrogate

# The legacy word rules (sun.text.resources BreakIteratorRules), each character one token.
_MID_WORD_ONLY = frozenset("\u00ad\u2027")  # and every Pd and Pc
_MID_BOTH = frozenset("'\"")  # in a word and in a number
_POST_NUM = frozenset("%&\u066a\u2030\u2031")
_WORD = r"L+(?:[-q.]L+)*d?"
_NUMBER = r"D+(?:[q.,]D+)*"
_RULES = [
    re.compile(rf"(?:{_WORD})?(?:{_NUMBER}{_WORD})*(?:{_NUMBER}[%c]?)?"),
    re.compile(rf"[$.](?:{_NUMBER}{_WORD})*(?:{_NUMBER}[%c]?)?"),
    re.compile(r"s*r?n?"),
    re.compile(r"[kj]+"),
    re.compile(r"[hj]+"),
    re.compile(r"K+"),
]


def _token(ch: str, category: Callable[[str], str] = unicodedata.category) -> str:
    """The character's class in the word rules ("" for one the rules skip: Mn, Me, Cf)."""
    cat = category(ch)
    o = ord(ch)
    if ch == "\u00ad":
        return "-"
    if cat in ("Mn", "Me", "Cf"):
        return ""
    if ch == "\u3005" or 0x4E00 <= o <= 0x9FA5 or 0xF900 <= o <= 0xFA2D or 0xE000 <= o <= 0xF8FF:
        return "K"
    if 0x3099 <= o <= 0x309C or o == 0x30FC:
        return "j"  # a CJK diacritic or the prolonged sound mark: goes with katakana or hiragana
    if 0x30A1 <= o <= 0x30FA or 0x30FD <= o <= 0x30FE:
        return "k"
    if 0x3041 <= o <= 0x3094 or 0x309D <= o <= 0x309E:
        return "h"
    if cat[0] == "L" or cat == "Mc":
        return "L"
    if cat[0] == "N":
        return "D"
    if ch in "\u0964\u0965":
        return "d"
    if cat in ("Pd", "Pc") or ch in _MID_WORD_ONLY:
        return "-"
    if ch in _MID_BOTH:
        return "q"
    if ch == ".":
        return "."
    if ch in ",\u066b":
        return ","
    if (cat == "Sc" and ch != "\u00a2") or ch == "#":
        return "$"
    if ch in _POST_NUM or ch == "\u00a2":
        return "%"
    if cat == "Zs" or ch == "\t":
        return "s"
    if ch == "\r":
        return "r"
    if ch in "\n\f\u2028\u2029":
        return "n"
    return "x"


def _words(text: str) -> list[tuple[int, int]]:
    """The legacy BreakIterator's words of ``text``, each [start, end): the longest match of the rules from
    each boundary, never a break before a skipped character (a run of them at the very start is a word)."""
    positions = [i for i, ch in enumerate(text) if _token(ch)]
    tokens = "".join(_token(text[i]) for i in positions)
    words = [(0, positions[0] if positions else len(text))] if not positions or positions[0] else []
    t = 0
    while t < len(tokens):
        n = max(max((m.end() for r in _RULES if (m := r.match(tokens, t))), default=t) - t, 1)
        words.append((positions[t], positions[t + n] if t + n < len(positions) else len(text)))
        t += n
    return words


_OTHER_CASED = (
    (0x02B0, 0x02B8),
    (0x02C0, 0x02C1),
    (0x02E0, 0x02E4),
    (0x0345, 0x0345),
    (0x037A, 0x037A),
    (0x1D2C, 0x1D61),
    (0x2160, 0x217F),
    (0x24B6, 0x24E9),
)


def _cased(ch: str) -> bool:
    """ConditionalSpecialCasing.isCased: Lu, Ll, Lt, or Other_Lowercase/Other_Uppercase as Java lists it."""
    o = ord(ch)
    return unicodedata.category(ch) in ("Lu", "Ll", "Lt") or any(a <= o <= b for a, b in _OTHER_CASED)


def java_lower(alias: str) -> str:
    """``alias.toLowerCase(Locale.ENGLISH)`` as Java computes it, the form a JKS stores and looks up.

    A capital sigma is final (U+03C2) when its word has a cased character before it and none after it
    (``ConditionalSpecialCasing.isFinalCased``); linear in the alias's length."""
    if _SIGMA not in alias:
        return alias.lower()
    cased = [0]  # cased[i]: how many of alias[:i] are cased
    for ch in alias:
        cased.append(cased[-1] + _cased(ch))
    out = [ch.lower() for ch in alias]  # Python's only context rule is the sigma's, decided below
    words = iter(_words(alias))
    start, end = next(words)
    for i, ch in enumerate(alias):
        if ch != _SIGMA:
            continue
        while i >= end:
            start, end = next(words)
        final = cased[i] - cased[start] > 0 and cased[end] - cased[i + 1] == 0
        out[i] = "\u03c2" if final else "\u03c3"
    return "".join(out)


def modified_utf8(text: str) -> bytes:
    """Java's modified UTF-8 (DataOutputStream.writeUTF without the length): UTF-16 code units, each one
    to three bytes; NUL as C0 80; a character outside the BMP as its two surrogates, three bytes each."""
    if "\0" not in text and (not text or max(text) <= "\uffff"):
        try:
            return text.encode("utf-8")  # the same bytes for every BMP character but NUL, and no surrogate here
        except UnicodeEncodeError:
            pass  # a lone surrogate: three bytes of its own below
    units = text.encode("utf-16-be", "surrogatepass")
    out = bytearray()
    for i in range(0, len(units), 2):
        u = (units[i] << 8) | units[i + 1]
        if 0 < u < 0x80:
            out.append(u)
        elif u < 0x800:
            out += bytes((0xC0 | u >> 6, 0x80 | u & 0x3F))
        else:
            out += bytes((0xE0 | u >> 12, 0x80 | u >> 6 & 0x3F, 0x80 | u & 0x3F))
    return bytes(out)


def read_modified_utf8(data: bytes) -> str:
    """What DataInputStream.readUTF makes of these bytes (without the length); ValueError where it throws
    UTFDataFormatException (a four-byte UTF-8 sequence, a stray continuation byte, a truncated sequence).
    Two surrogates in a row make one character outside the BMP; a lone one stays a lone surrogate."""
    if data.isascii():
        return data.decode("ascii")
    units = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            u, i = b, i + 1
        elif b >> 5 == 0b110 and i + 1 < n and data[i + 1] >> 6 == 0b10:
            u, i = (b & 0x1F) << 6 | data[i + 1] & 0x3F, i + 2
        elif b >> 4 == 0b1110 and i + 2 < n and data[i + 1] >> 6 == 0b10 and data[i + 2] >> 6 == 0b10:
            u, i = (b & 0x0F) << 12 | (data[i + 1] & 0x3F) << 6 | data[i + 2] & 0x3F, i + 3
        else:
            raise ValueError(f"malformed modified UTF-8 at byte {i}")
        units += u.to_bytes(2, "big")
    return units.decode("utf-16-be", "surrogatepass")


def alias_unfit(alias: str) -> str:
    """Why a JKS cannot hold this alias portably (a phrase without the alias), or empty: a character
    outside the Basic Multilingual Plane (Java stores it as two surrogates, which pyjks and older
    writers get wrong), a lone surrogate or a NUL (no command line or XML attribute can name it), more
    than 65,535 bytes of modified UTF-8; or a character Java versions lower-case differently, so that
    no one lower-casing is every JDK's (tests/test_jks_aliases.py checks the rest against three)."""
    if alias.isascii() and "\0" not in alias and len(alias) <= MAX_ALIAS_BYTES:
        return ""  # the common case, and the hot one (10,000 trust files): ASCII is the same in every JDK
    if alias and max(alias) > "\uffff":
        return "has a character outside the Basic Multilingual Plane, which a JKS cannot hold portably"
    if _UNNAMEABLE.search(alias):
        return "has a NUL or a lone surrogate, which a JKS alias must not hold: no keytool -alias can name it"
    sigma = _SIGMA in alias  # ASCII is the same in every JDK: only the others are looked at, each once
    shifting = next((ch for ch in sorted(set(alias)) if ch > "\x7f" and _version_dependent(ch, sigma)), None)
    if shifting is not None:
        return (
            f"has U+{ord(shifting):04X}, which Java versions lower-case differently (a letter newer than "
            "Unicode 3.2, or unknown here), so a JKS alias with it is not portable"
        )
    if len(modified_utf8(java_lower(alias))) > MAX_ALIAS_BYTES:
        return f"is longer than a JKS can hold ({MAX_ALIAS_BYTES} bytes of modified UTF-8)"
    return ""


@functools.lru_cache(maxsize=8192)
def _version_dependent(ch: str, sigma: bool) -> bool:
    """A character whose lower case, or (beside a capital sigma) whose class in the word rules, an older
    or newer JDK may see otherwise: unassigned in this Python's Unicode; one with a lower case that
    Unicode 3.2 did not have or had in another class (Cherokee, Georgian Mtavruli, capital sharp s); or,
    with a sigma about, one Unicode 3.2 did not have or put in another word class."""
    now = unicodedata.category(ch)
    if now == "Cn":
        return True
    then = unicodedata.ucd_3_2_0.category(ch)
    if ch.lower() != ch and then != now:
        return True
    return sigma and (then == "Cn" or _token(ch, unicodedata.ucd_3_2_0.category) != _token(ch))
