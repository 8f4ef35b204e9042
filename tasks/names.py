"""Dutch personal names: first name(s), prefix (*tussenvoegsel*) and last name from one full-name field.

AFAS keeps the parts apart (``KnPerson``: ``FiNm`` first name, ``Is`` prefix, ``LaNm`` last name); use those
fields where a GetConnector offers them. Where only a full name is offered (``Profit_Contacts.FullName``:
"Roepnaam voorvoegsel achternaam"), ``split_dutch_name`` applies this rule:

1. One word is a last name.
2. The first word is always (part of) the first name.
3. From the second word on, the first word that is a known prefix (``PREFIXES``) ends the first name:
   written in lower case ("de", "van den") the run of prefix words is the prefix and the rest the last
   name; capitalised ("De Smet", Flemish style) it is part of the last name and there is no prefix.
4. Without a prefix word, the last word is the last name and every word before it the first name(s):
   "Jan Willem Jansen" → ("Jan Willem", None, "Jansen").

So "Jan Willem de Vries" → ("Jan Willem", "de", "Vries") and "Hanna van den Berg" → ("Hanna", "van den",
"Berg"). A hyphenated word ending in a prefix starts the last name: "Anne Smit-de Boer" → ("Anne", None,
"Smit-de Boer").
"""

from __future__ import annotations

PREFIXES = frozenset(
    {
        "van", "de", "der", "den", "het", "'t", "ter", "ten", "te", "in", "op", "aan", "bij", "uit",
        "onder", "over", "voor", "von", "vom", "zu", "zur", "la", "le", "du", "des", "da", "di", "del",
        "della", "dos", "el", "'s", "d'", "l'",
    }
)  # fmt: skip


def split_dutch_name(full: str | None) -> tuple[str | None, str | None, str | None]:
    """``(first, prefix, last)`` of a full name by the rule above; empty parts are ``None``."""
    words = (full or "").split()
    if not words:
        return None, None, None
    if len(words) == 1:
        return None, None, words[0]
    start = next((i for i in range(1, len(words)) if _starts_last_name(words[i])), None)
    if start is None:
        return " ".join(words[:-1]), None, words[-1]
    first = " ".join(words[:start])
    if words[start] != words[start].lower() or "-" in words[start]:
        return first, None, " ".join(words[start:])
    end = start
    while end < len(words) - 1 and words[end].casefold() in PREFIXES and words[end] == words[end].lower():
        end += 1
    if end == start:  # the prefix word is the last word: it is the last name ("Jan de")
        return first, None, words[start]
    return first, " ".join(words[start:end]), " ".join(words[end:])


def _starts_last_name(word: str) -> bool:
    """A prefix word, or a hyphenated one ending in a prefix ("Smit-de" of "Smit-de Boer")."""
    return word.casefold() in PREFIXES or ("-" in word and word.rsplit("-", 1)[1].casefold() in PREFIXES)


def join_name(first: str | None, prefix: str | None, last: str | None) -> str:
    """The parts as one name again (``"Jan Willem de Vries"``)."""
    return " ".join(part for part in (first, prefix, last) if part)
