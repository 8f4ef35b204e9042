"""Small value helpers: comparable text, name keys for review matches, AFAS address lines, nested bodies.

AFAS's ``Profit_Debtor`` prints an address as lines (``AdressLine1`` = street and number, ``AdressLine3`` =
postcode and city, ``AdressLine4`` = country); TOPdesk keeps the parts. ``Profit_Contacts`` only has
``FullName`` (first name, prefix, last name), TOPdesk wants ``firstName`` and ``surName``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tasks.names import split_dutch_name

_LINE1 = re.compile(r"^(?P<street>.*?\D)\s*(?P<number>\d[\w\s\-/]*)$")
_NL_POSTCODE = re.compile(r"^(?P<postcode>\d{4}\s?[A-Za-z]{2})\s+(?P<city>.+)$")
_OTHER_POSTCODE = re.compile(r"^(?P<postcode>(?:[A-Z]{1,2}-)?\d{4,5})\s+(?P<city>.+)$")


def text(value: Any) -> str:
    """A cell as comparable text: missing values (None, NaN, NA, NaT) are ``""``, text is stripped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def optional(value: Any) -> str | None:
    """``text(value)``, with ``""`` as ``None`` (what the record schemas expect for an empty field)."""
    return text(value) or None


def name_key(value: Any) -> str:
    """A name reduced for "same name?" comparisons: accents, case, punctuation and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text(value))
    kept = (c for c in decomposed if not unicodedata.combining(c) and c.isalnum())
    return "".join(kept).casefold()


def split_street(line: Any) -> tuple[str | None, str | None]:
    """``"Kerkstraat 12 A"`` → ``("Kerkstraat", "12 A")``; a line without a number is all street."""
    value = text(line)
    match = _LINE1.match(value)
    if not match:
        return optional(value), None
    return optional(match["street"]), optional(match["number"])


def split_postcode(line: Any) -> tuple[str | None, str | None]:
    """``"7511 AA Enschede"`` → ``("7511 AA", "Enschede")``; also ``1000 Brussel``, ``D-10115 Berlin``."""
    value = text(line)
    match = _NL_POSTCODE.match(value) or _OTHER_POSTCODE.match(value)
    if not match:
        return None, optional(value)
    return optional(match["postcode"]), optional(match["city"])


def split_full_name(value: Any) -> tuple[str | None, str | None]:
    """``"Jan Willem de Vries"`` → ``("Jan Willem", "de Vries")``: first name(s), and prefix + last name.

    The rule for Dutch names is ``tasks.names.split_dutch_name``; ``split_name_parts`` keeps the prefix apart.
    """
    first, prefix, last = split_name_parts(value)
    return first, optional(" ".join(p for p in (prefix, last) if p))


def split_name_parts(value: Any) -> tuple[str | None, str | None, str | None]:
    """``"Jan Willem de Vries"`` → ``("Jan Willem", "de", "Vries")`` (``tasks.names.split_dutch_name``)."""
    return split_dutch_name(text(value))


def split_house_number(value: Any) -> tuple[int | None, str | None]:
    """``"12 A"`` → ``(12, "A")`` for AFAS ``HmNr`` (an integer) and ``HmAd`` (the addition)."""
    match = re.match(r"^\s*(\d+)\s*[-/]?\s*(.*)$", text(value))
    if not match:
        return None, optional(value)
    return int(match[1]), optional(match[2])


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"address.city": "Breda"}`` → ``{"address": {"city": "Breda"}}`` (TOPdesk bodies are nested)."""
    body: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body
