"""Validation of branch and person writes with TOPdesk's lengths and messages (reference §5).

``apply_changes`` checks every field of a POST/PATCH body against its rule and writes the accepted values
into the record; the first problem raises an ``ApiError`` 400 with TOPdesk's wording, e.g.
``The value for the field "name" can only be 60 characters long.``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.topdesk.fiql import parse_datetime_ms
from sandbox.topdesk.http import ApiError

if TYPE_CHECKING:
    from sandbox.topdesk.state import TopdeskSim

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Rule:
    """How one field is checked.

    ``kind`` is one of text, email, bool, enum, branch_id, branch_ref, none_ref, name_ref, address, optional.
    """

    kind: str
    length: int | None = None
    choices: tuple[str, ...] = ()


def _text(length: int | None = None) -> Rule:
    return Rule("text", length)


BRANCH_RULES: dict[str, Rule] = {
    "name": _text(60),
    "specification": _text(70),
    "clientReferenceNumber": _text(30),
    "timeZone": _text(50),
    "phone": _text(25),
    "fax": _text(25),
    "email": _text(100),
    "website": _text(100),
    "membershipNumber": _text(60),
    "vatNumber": _text(25),
    "attentionComment": _text(127),
    "additionalInfo": _text(),
    "notes": _text(),
    "branchType": Rule("enum", choices=("independentBranch", "headBranch", "hasAHeadBranch")),
    "serviceWindowOption": Rule("enum", choices=("default", "specific")),
    "headBranch": Rule("branch_ref"),
    "address": Rule("address"),
    "postalAddress": Rule("address"),
    "optionalFields1": Rule("optional"),
    "optionalFields2": Rule("optional"),
    **{name: Rule("none_ref") for name in ("extraA", "extraB", "accountManager", "contact", "serviceWindow")},
    "attention": Rule("none_ref"),
}
PERSON_RULES: dict[str, Rule] = {
    "surName": _text(50),
    "firstName": _text(30),
    "firstInitials": _text(10),
    "prefixes": _text(10),
    "birthName": _text(100),
    "employeeNumber": _text(20),
    "email": Rule("email", 100),
    "phoneNumber": _text(25),
    "mobileNumber": _text(25),
    "fax": _text(25),
    "title": _text(35),
    "jobTitle": _text(100),
    "networkLoginName": _text(100),
    "tasLoginName": _text(100),
    "branch": Rule("branch_id"),
    "department": Rule("name_ref"),
    "hasSspAccess": Rule("bool"),
    "isCaller": Rule("bool"),
    "isManager": Rule("bool"),
    "optionalFields1": Rule("optional"),
    "optionalFields2": Rule("optional"),
    **{name: Rule("none_ref") for name in ("location", "budgetHolder", "manager", "language")},
    **{name: Rule("none_ref") for name in ("personExtraFieldA", "personExtraFieldB")},
}
_ADDRESS = {"street": 50, "number": 50, "county": 50, "city": 30, "postcode": 15, "addressMemo": None}
_ADDRESS_TYPES = (None, "text", "fields")


def apply_changes(
    sim: TopdeskSim, record: dict[str, Any], body: dict[str, Any], rules: dict[str, Rule]
) -> None:
    """Validate ``body`` field by field and write it into ``record`` (400 on the first problem)."""
    for name, value in body.items():
        rule = rules.get(name)
        if rule is None:
            raise ApiError(400, f'The field "{name}" does not exist.', applies_to=[name])
        record[name] = _checked(sim, name, value, rule, record.get(name))
    if record.get("branchType") == "hasAHeadBranch" and not record.get("headBranch"):
        raise ApiError(
            400,
            "Branch type 'hasAHeadBranch' was selected, but no head branch was given.",
            applies_to=["headBranch"],
        )


def _checked(sim: TopdeskSim, name: str, value: Any, rule: Rule, current: Any) -> Any:
    if rule.kind in ("text", "email"):
        return _checked_text(name, value, rule)
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise _unparsable(name)
        return value
    if rule.kind == "enum":
        if value not in rule.choices:
            raise _unparsable(name)
        return value
    if rule.kind == "address":
        return _checked_address(sim, name, value, current)
    if rule.kind == "optional":
        return _checked_optional(name, value, current)
    return _checked_reference(sim, name, value, rule)


def _checked_text(name: str, value: Any, rule: Rule) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _unparsable(name)
    if rule.length is not None and len(value) > rule.length:
        raise ApiError(
            400,
            f'The value for the field "{name}" can only be {rule.length} characters long.',
            applies_to=[name],
        )
    if rule.kind == "email" and value and not _EMAIL.match(value):
        raise ApiError(
            400, f'The value for the field "{name}" is not a valid email address.', applies_to=[name]
        )
    return value


def _checked_reference(sim: TopdeskSim, name: str, value: Any, rule: Rule) -> Any:
    """``{id}`` references: only branches exist in this tenant; plain-text departments go by ``{name}``."""
    if value is None:
        if rule.kind == "branch_id":
            raise ApiError(400, f"Mandatory field '{name}' is missing.", applies_to=[name])
        return None
    if not isinstance(value, dict):
        raise _unparsable(name)
    if rule.kind == "name_ref" and isinstance(value.get("name"), str) and not value.get("id"):
        return {"id": None, "name": value["name"]}
    if rule.kind in ("branch_id", "branch_ref"):
        branch = sim.branches.by_id.get(value.get("id") or "")
        if branch is not None:
            return branch["id"] if rule.kind == "branch_id" else {"id": branch["id"], "name": branch["name"]}
    raise ApiError(400, f'The value for the field "{name}" cannot be found.', applies_to=[name])


def _checked_address(sim: TopdeskSim, name: str, value: Any, current: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unparsable(name)
    address = dict(current or {})
    for key, part in value.items():
        dotted = f"{name}.{key}"
        if key == "country":
            address[key] = _country(sim, dotted, part)
        elif key == "addressType":
            if part not in _ADDRESS_TYPES:
                raise _unparsable(dotted)
            address[key] = part
        elif key in _ADDRESS:
            address[key] = _checked_text(dotted, part, _text(_ADDRESS[key]))
        else:
            raise ApiError(400, f'The field "{dotted}" does not exist.', applies_to=[dotted])
    return address


def _country(sim: TopdeskSim, name: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _unparsable(name)
    for country in sim.countries:
        if value.get("id") == country["id"] or (not value.get("id") and value.get("name") == country["name"]):
            return {"id": country["id"], "name": country["name"]}
    raise ApiError(400, f'The value for the field "{name}" cannot be found.', applies_to=[name])


def _checked_optional(name: str, value: Any, current: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unparsable(name)
    block = dict(current or {})
    for key, part in value.items():
        dotted = f"{name}.{key}"
        if key not in block:
            raise ApiError(400, f'The field "{dotted}" does not exist.', applies_to=[dotted])
        block[key] = _optional_value(dotted, key.rstrip("12345"), part)
    return block


def _optional_value(name: str, kind: str, value: Any) -> Any:
    if kind == "memo":
        raise ApiError(400, "Memo fields cannot be modified via the API", applies_to=[name])
    if kind == "text":
        return _checked_text(name, value, _text(100))
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "date":
        return _optional_date(name, value)
    if kind == "searchlist" and value is None:
        return None
    if kind == "searchlist":
        raise ApiError(400, f'The value for the field "{name}" cannot be found.', applies_to=[name])
    raise _unparsable(name)


def _optional_date(name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        parse_datetime_ms(str(value))
    except ValueError:
        raise _unparsable(name) from None
    return value


def _unparsable(name: str) -> ApiError:
    return ApiError(400, f'The value for the field "{name}" cannot be parsed', applies_to=[name])
