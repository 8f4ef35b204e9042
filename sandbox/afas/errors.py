"""AFAS Profit's error answers: messages in Dutch and English, error numbers and the 500 body shape.

Profit answers business and validation errors with HTTP 500 and
``{"externalMessage", "errorNumber", "profitLogReference"}`` (reference §9). The messages quoted in the
reference (``Connector-veld 'X' niet gevonden``, the two "niet geautoriseerd" texts, ``Er is een
onverwachte fout opgetreden.``, ``General message: Invalid Index field``, ``De ingevulde waarde bij
'Medewerker' bestaat niet.``) are used verbatim; the others are written in the same style. The English
variants answer ``Accept-Language: en-us``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# errorNumber is mostly generic in Profit (reference §9); the sandbox uses three of the observed ones.
UNEXPECTED = -2147180999  # "Er is een onverwachte fout opgetreden." (bad skip/take, malformed requests)
CONNECTOR = -2147180996  # problems with the connector definition: unknown field, invalid index field
VALIDATION = -2147220469  # validation and business rules of an UpdateConnector
OUT_OF_MEMORY = -2147024882  # E_OUTOFMEMORY

MESSAGES: dict[str, tuple[str, str]] = {
    "unexpected": ("Er is een onverwachte fout opgetreden.", "An unexpected error has occurred."),
    "field_not_found": ("Connector-veld '{field}' niet gevonden", "Connector field '{field}' not found"),
    "invalid_index": ("General message: Invalid Index field", "General message: Invalid Index field"),
    "out_of_memory": ("Out of memory", "Out of memory"),
    "token": (
        "Het token is ongeldig, verlopen of niet (base64) gecodeerd.",
        "The token is invalid, expired or not (base64) encoded.",
    ),
    "ip_blocked": (
        "Toegang vanaf dit IP-adres is niet toegestaan.",
        "Access from this IP address is not allowed.",
    ),
    "get_not_authorised": (
        "GetConnector niet ondersteund voor deze app of de gebruiker is niet geautoriseerd",
        "GetConnector not supported for this app or the user is not authorised",
    ),
    "update_not_authorised": (
        "General message: Deze UpdateConnector wordt niet ondersteund of de gebruiker is niet geautoriseerd.",
        "General message: This UpdateConnector is not supported or the user is not authorised.",
    ),
    "invalid_json": ("Ongeldige JSON in de body van het verzoek.", "Invalid json"),
    "payload_too_large": (
        "Het verzoek is groter dan {limit} bytes.",
        "The request is larger than {limit} bytes.",
    ),
    "unknown_root": (
        "Het object '{name}' is onbekend in UpdateConnector '{connector}'; verwacht '{expected}'.",
        "Object '{name}' is unknown in UpdateConnector '{connector}'; expected '{expected}'.",
    ),
    "bad_shape": (
        "Ongeldige opbouw van het verzoek bij '{where}'.",
        "Invalid request structure at '{where}'.",
    ),
    "unknown_object": (
        "Het object '{name}' is onbekend in '{parent}'.",
        "Object '{name}' is unknown in '{parent}'.",
    ),
    "unknown_field": (
        "Het veld '{name}' is onbekend in object '{obj}'.",
        "Field '{name}' is unknown in object '{obj}'.",
    ),
    "bad_value": (
        "De waarde '{value}' is ongeldig voor veld '{label}' ({name}): verwacht {kind}.",
        "The value '{value}' is invalid for field '{label}' ({name}): expected {kind}.",
    ),
    "bad_enum": (
        "De waarde '{value}' is niet toegestaan voor veld '{label}' ({name}).",
        "The value '{value}' is not allowed for field '{label}' ({name}).",
    ),
    "too_long": (
        "De waarde voor veld '{label}' ({name}) is te lang: {length} tekens, maximaal {maximum}.",
        "The value for field '{label}' ({name}) is too long: {length} characters, at most {maximum}.",
    ),
    "mandatory": (
        "Het veld '{label}' ({name}) in object '{obj}' is verplicht.",
        "Field '{label}' ({name}) in object '{obj}' is mandatory.",
    ),
    "not_exists": (
        "De ingevulde waarde bij '{label}' bestaat niet.",
        "The value entered for '{label}' does not exist.",
    ),
    "already_exists": (
        "Er bestaat al een record met {label} '{value}'.",
        "A record with {label} '{value}' already exists.",
    ),
    "record_not_found": (
        "Het record met {label} '{value}' is niet gevonden.",
        "The record with {label} '{value}' was not found.",
    ),
    "already_debtor": (
        "Organisatie {bcco} is al verkooprelatie {debtor}.",
        "Organisation {bcco} is already sales relation {debtor}.",
    ),
    "absence_overlap": (
        "Medewerker {employee} heeft al een verzuimmelding in deze periode.",
        "Employee {employee} already has an absence in this period.",
    ),
    "has_children": (
        "De organisatorische eenheid {unit} heeft nog onderliggende eenheden.",
        "Organisational unit {unit} still has units below it.",
    ),
    "debtor_blocked": ("Verkooprelatie {debtor} is geblokkeerd.", "Sales relation {debtor} is blocked."),
    "project_other_debtor": (
        "Project {project} hoort niet bij verkooprelatie {debtor}.",
        "Project {project} does not belong to sales relation {debtor}.",
    ),
    "project_closed": ("Project {project} is afgesloten.", "Project {project} is completed."),
    "period_missing": (
        "Er is geen periode {year}/{period} in administratie {unit}.",
        "There is no period {year}/{period} in administration {unit}.",
    ),
    "period_blocked": (
        "Periode {year}/{period} van administratie {unit} is geblokkeerd.",
        "Period {year}/{period} of administration {unit} is blocked.",
    ),
    "period_move": (
        "Een regel kan niet naar een andere periode worden verplaatst.",
        "A line cannot be moved to another period.",
    ),
    "unbalanced": (
        "De boeking is niet in balans: debet {debit}, credit {credit}.",
        "The entry does not balance: debit {debit}, credit {credit}.",
    ),
    "quantity_step": (
        "Het aantal {quantity} is geen veelvoud van 0,05 uur.",
        "The quantity {quantity} is not a multiple of 0.05 hours.",
    ),
    "verb_not_supported": (
        "De UpdateConnector '{connector}' ondersteunt geen {verb}.",
        "UpdateConnector '{connector}' does not support {verb}.",
    ),
    "delete_not_supported": (
        "Verwijderen via de UpdateConnector '{connector}' wordt niet ondersteund.",
        "Deleting through UpdateConnector '{connector}' is not supported.",
    ),
    "ambiguous": (
        "Er zijn meerdere records gevonden voor {label} '{value}'.",
        "More than one record was found for {label} '{value}'.",
    ),
    "rejected": (
        "Verkooprelatie {debtor}: de boeking is geweigerd door een controle in Profit.",
        "Sales relation {debtor}: the posting was refused by a check in Profit.",
    ),
}


@dataclass(eq=False)
class AfasError(Exception):
    """An error answered the way Profit answers it: a status, a message key with parameters, a number."""

    key: str
    params: dict[str, object] = field(default_factory=dict)
    status: int = 500
    number: int = VALIDATION
    text: str | None = None  # a literal message overriding the key (e.g. from a test helper)

    def message(self, language: str) -> str:
        """The externalMessage in the language of ``Accept-Language`` (Dutch unless ``en-us``)."""
        if self.text is not None:
            return self.text
        dutch, english = MESSAGES[self.key]
        template = english if language_is_english(language) else dutch
        return template.format(**self.params)

    def __str__(self) -> str:
        return self.message("nl-nl")


def language_is_english(accept_language: str | None) -> bool:
    """True when the client asked for English (``en-us`` first in ``Accept-Language``)."""
    return (accept_language or "").strip().lower().startswith("en")


def unexpected() -> AfasError:
    """Profit's generic 500 (bad skip/take, malformed requests)."""
    return AfasError("unexpected", number=UNEXPECTED)


def field_not_found(name: str) -> AfasError:
    """500 ``Connector-veld 'X' niet gevonden``."""
    return AfasError("field_not_found", {"field": name}, number=CONNECTOR)
