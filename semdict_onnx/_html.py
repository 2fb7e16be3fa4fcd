"""The page's text rules: escaping, script-safe JSON, and numbers written as semdict.js writes.

Every string a page shows goes through `escape`; the embedded JSON cannot end its script
element; image sources are only http(s) URLs or data:image URIs. The first selection is
rendered in Python (the page reads without JavaScript) and must read exactly as the script
redraws it, so numbers, rounding, bar widths and display templates follow JavaScript's rules.
"""

from __future__ import annotations

import html
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import DictionaryError, ImageError

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_FIELD = re.compile(r"\{(\w+)\}")


def escape(text: object) -> str:
    """`text` escaped for HTML text and quoted attribute values."""
    return html.escape(str(text), quote=True)


def json_for_script(payload: Any) -> str:
    """JSON that is safe inside a <script> element: no <, >, &, U+2028 or U+2029 left raw."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda match: _JSON_ESCAPES[match.group()], text)


def fill(template: str, **fields: object) -> str:
    """Replace `{name}` fields of a display template, the way semdict.js does."""
    return _FIELD.sub(lambda m: str(fields[m[1]]) if m[1] in fields else m[0], template)


def js_number(value: float) -> str:
    """`value` written exactly as JavaScript's String(number) writes it, for matching output."""
    if not math.isfinite(value):
        raise DictionaryError(f"cannot show a non-finite number ({value})")
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = exponent + len(text)  # value = 0.<digits> * 10**point
    if len(text) <= point <= 21:
        body = text + "0" * (point - len(text))
    elif 0 < point <= 21:
        body = f"{text[:point]}.{text[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * -point + text
    else:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        body = f"{mantissa}e{'+' if point - 1 >= 0 else '-'}{abs(point - 1)}"
    return ("-" if value < 0 else "") + body


def readable_number(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, as semdict.js writes it for a person to read.

    That is `String(Number(value.toPrecision(digits)))`: rounded from the exact binary value,
    halves away from zero (as toPrecision does), written as String() writes it, so
    137.75078 reads "138" and 0.0012345 "0.00123" in the page's Python and script alike.
    """
    if not math.isfinite(value):
        raise DictionaryError(f"cannot show a non-finite number ({value})")
    if value == 0:
        return "0"
    exact = Decimal(value)  # the float's exact binary value, as toPrecision rounds it
    step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    return js_number(float(exact.quantize(step, rounding=ROUND_HALF_UP)))


def js_round(value: float) -> int:
    """`value` rounded as JavaScript's Math.round does (halves go up)."""
    whole = math.floor(value)
    return whole + 1 if value - whole >= 0.5 else whole


def float32_values(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32."""
    return [float(str(v)) for v in np.asarray(values, np.float32).ravel()]


def bar_parts(value: float, reference: float, raw: bool) -> tuple[str, int, str]:
    """A bar's width (percent, 2 decimals), its percentage, and its label, as semdict.js has them.

    The label is the percentage, or at raw scale the value to 3 significant digits.
    """
    ratio = value / reference if reference > 0 else 0.0
    percent = js_round(100 * ratio)
    label = readable_number(value) if raw else f"{percent}%"
    return f"{min(100.0, 100 * ratio):.2f}", percent, label


def checked_image_url(url: str) -> str:
    """`url` if it is an http, https or data:image URL a page may load, else an ImageError."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https") or (scheme == "data" and url[5:].lower().startswith("image/")):
        return url
    raise ImageError(
        f"refusing image URL {url[:60]!r}: a page only loads http, https or data:image URLs"
    )
