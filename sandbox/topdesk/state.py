"""The TOPdesk simulator's options and mutable state (``app.state.sim``), built from the seeded world.

``TopdeskSim`` also carries the control helpers tests use to change the world under a running simulator:
``set_registration_minutes``, ``set_registration_entry_date``, ``delete_registration`` and
``add_registration``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sandbox.topdesk.fiql import EPOCH
from sandbox.topdesk.http import ApiError
from sandbox.topdesk.odata import build_tables
from sandbox.topdesk.records import RecordSet, optional_fields
from sandbox.topdesk.tickets import IncidentStore, Names, RegistrationStore, ms_array
from sandbox.world import World, stable_uuid
from sandbox.world import topdesk as world_topdesk

if TYPE_CHECKING:
    from sandbox.topdesk.ticket_writes import TicketWriteKnobs

DEFAULT_ENTITY_SETS = {
    "changes": "Changes",
    "change_activities": "ChangeActivities",
    "problems": "Problems",
    "change": "ChangeTimeRegistrations",
    "change_activity": "ChangeActivityTimeRegistrations",
    "problem": "ProblemTimeRegistrations",
}
PERSON_LOGIN = "portaal.klant"


def application_password(seed: int, account: str) -> str:
    """A deterministic TOPdesk-style application password (five groups of five) for ``account``."""
    digest = hashlib.sha256(f"topdesk|{seed}|{account}".encode()).digest()
    letters = base64.b32encode(digest).decode().lower()[:25]
    return "-".join(letters[i : i + 5] for i in range(0, 25, 5))


@dataclass
class TopdeskOptions:
    """Switches of the simulator; all may also be changed at run time on ``app.state.sim.options``.

    ``login``/``application_password`` default to ``koppel.api`` and a password derived from the seed
    (see ``app.state.sim.login``/``.password``); the person account (403 on operator endpoints) likewise.
    """

    login: str | None = None
    application_password: str | None = None
    person_login: str = PERSON_LOGIN
    person_password: str | None = None
    version: str = "4.2.6"
    product_version: dict[str, int] = field(default_factory=lambda: {"major": 14, "minor": 6, "patch": 1})
    html_401: bool = False  # 401 as an HTML page instead of the JSON message list
    error_style: str = "message"  # message | errors | descriptions (see sandbox.topdesk.http)
    bulk_next: bool = False  # /incidents/timeregistrations: 206 + body "next" while more pages exist
    serve_duplicates: bool = True  # serve every `duplicate` registration a second time, a page later
    insert_between_pages: int = 0  # registrations inserted before every bulk page after the first
    delete_between_pages: int = (
        0  # registrations deleted (from the front) before every bulk page after the first
    )
    odata_entity_sets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENTITY_SETS))
    odata_page_size: int = 1000  # server-driven OData page size (then @odata.nextLink)
    malformed_copies: int = (
        0  # serve n copies of every malformed kind per source (sandbox/topdesk/malformed.py)
    )
    ignore_fiql: bool = (
        False  # /incidents/timeregistrations ignores `query` (a tenant without FIQL filtering)
    )
    missing_entity_sets: tuple[str, ...] = ()  # OData entity sets this tenant does not have (404, not listed)
    can_write_branches: bool = True  # False: 403 "No permission to create branches"
    can_write_persons: bool = True


class TopdeskSim:
    """Everything the simulator serves and changes, plus credentials and control helpers."""

    ticket_writes: TicketWriteKnobs  # set on first use by sandbox/topdesk/ticket_writes.py:knobs()

    def __init__(self, world: World, options: TopdeskOptions | None = None) -> None:
        self.world = world
        self.options = options or TopdeskOptions()
        self.login = self.options.login or world_topdesk.API_LOGIN
        self.password = self.options.application_password or application_password(world.seed, "operator")
        self.person_login = self.options.person_login
        self.person_password = self.options.person_password or application_password(world.seed, "person")
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.epoch_ms = (datetime.combine(world.anchor, time(), UTC) - EPOCH) // _MS
        self.random = random.Random(world.seed)
        self.inserted: list[str] = []  # ids added by the "insert between pages" fault profile
        self.deleted: list[str] = []
        self.total_offsets: dict[str, int] = {}  # incident id -> minutes TOPdesk's total is off by
        self.malformed: dict[str, list[Any]] = {}  # source -> the malformed rows it serves
        frames = _frames(world)
        self.frames = frames
        self._build_staff(frames)
        self._build_masterdata(frames)
        self.incidents = IncidentStore(frames["td_incidents"])
        self.registrations = RegistrationStore(frames["td_registrations"], self.incidents, self.refs)
        self._build_operations(frames)
        self.odata = build_tables(frames, self.refs, self.options.odata_entity_sets)
        self.api_operator = int(np.flatnonzero(frames["td_operators"]["apiAccount"].to_numpy())[0])

    # --- building -----------------------------------------------------------------------------------------

    def _build_staff(self, frames: dict[str, pd.DataFrame]) -> None:
        operators, groups = frames["td_operators"], frames["td_operator_groups"]
        actor_ids = np.concatenate([operators["id"].to_numpy(object), groups["id"].to_numpy(object)])
        actor_names = np.concatenate(
            [operators["dynamicName"].to_numpy(object), groups["groupName"].to_numpy(object)]
        )
        self.refs = {
            "actors": Names(
                actor_ids, actor_names
            ),  # operators, then groups (a group can be booked as operator)
            "groups": Names(groups["id"].to_numpy(object), groups["groupName"].to_numpy(object)),
            "reasons": Names(
                frames["td_reasons"]["id"].to_numpy(object), frames["td_reasons"]["name"].to_numpy(object)
            ),
        }
        self.operator_group = dict(zip(operators["id"], operators["operatorGroup.id"], strict=True))
        self.operators = [_operator(row) for row in operators.to_dict("records")]
        self.groups = [
            {"id": g["id"], "groupName": g["groupName"], "hourlyRate": float(g["hourlyRate"])}
            for g in groups.to_dict("records")
        ]

    def _build_masterdata(self, frames: dict[str, pd.DataFrame]) -> None:
        self.countries = frames["td_countries"].to_dict("records")
        self.archiving_reasons = frames["td_archiving_reasons"].to_dict("records")
        self.reasons = frames["td_reasons"].to_dict("records")
        self.categories = frames["td_categories"]
        creator = self.api_ref()
        countries = {c["name"]: c for c in self.countries}
        stamp = self.epoch_ms - 400 * 86_400_000  # master data predates the generated period
        branches = [
            _branch(row, countries, creator, stamp) for row in frames["td_branches"].to_dict("records")
        ]
        self.branches = RecordSet("Branch", branches, lambda r: r)
        persons = [_person(row, creator, stamp) for row in frames["td_persons"].to_dict("records")]
        self.persons = RecordSet("Person", persons, self.render_person)

    def _build_operations(self, frames: dict[str, pd.DataFrame]) -> None:
        actors, groups = self.refs["actors"], self.refs["groups"]
        activities = [
            _activity(row, actors, groups)
            for row in _records(frames["td_om_activities"], ("plannedStartDate",))
        ]
        self.om_activities = RecordSet("Operational activity", activities, self.render_activity)
        self.om_registrations: dict[str, list[dict[str, Any]]] = {}
        for row in _records(frames["td_om_registrations"], ("entryDate",)):
            self.om_registrations.setdefault(row["activity.id"], []).append(_om_registration(row))
        changes = [_change(row) for row in _records(frames["td_changes"], ())]
        self.changes = RecordSet("Change", changes, self.render_change)
        numbers = {c["id"]: c["number"] for c in changes}
        activities = [_change_activity(row, numbers) for row in _records(frames["td_change_activities"], ())]
        self.change_activities = RecordSet("Change activity", activities, lambda r: r)

    def render_activity(self, record: dict[str, Any]) -> dict[str, Any]:
        """An activity with its linked branches as ``[{id, name}]``."""
        shown = dict(record)
        refs = [self.branches.by_id.get(key) for key in record["linkedBranches"]]
        shown["linkedBranches"] = [{"id": b["id"], "name": b["name"]} for b in refs if b is not None]
        return shown

    def render_change(self, record: dict[str, Any]) -> dict[str, Any]:
        """A change with ``requester {id, name, branch {id, name}}``."""
        shown = dict(record)
        person = self.persons.by_id.get(record["requester"] or "")
        branch = self.branches.by_id.get(record["requester_branch"])
        shown.pop("requester_branch")
        shown["requester"] = {
            "id": person["id"] if person else None,
            "name": person["dynamicName"] if person else None,
            "branch": {"id": branch["id"], "name": branch["name"]} if branch else None,
        }
        return shown

    # --- helpers used by the handlers ------------------------------------------------------------------

    def now_ms(self) -> int:
        """The simulator's clock as epoch milliseconds (``clock`` can be replaced in tests)."""
        return (self.clock() - EPOCH) // _MS

    def new_id(self) -> str:
        """A fresh, reproducible uuid4."""
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def api_ref(self) -> dict[str, str]:
        """``{id, name}`` of the API account (creator/modifier of what the API writes)."""
        frame = self.frames["td_operators"]
        row = frame[frame["apiAccount"]].iloc[0]
        return {"id": row["id"], "name": row["dynamicName"]}

    def branch_ref(self, branch_id: str | None) -> dict[str, Any] | None:
        """How incidents and persons show their branch."""
        record = self.branches.by_id.get(branch_id or "")
        if record is None:
            return None
        return {
            "id": record["id"],
            "name": record["name"],
            "clientReferenceNumber": record["clientReferenceNumber"],
            "timeZone": record["timeZone"],
            "phoneNumber": record["phone"],
            "extraA": record["extraA"],
            "extraB": record["extraB"],
        }

    def render_person(self, record: dict[str, Any]) -> dict[str, Any]:
        """A stored person as persons v2 shows it (branch as an object)."""
        shown = dict(record)
        branch = self.branch_ref(record["branch"])
        shown["branch"] = (
            None
            if branch is None
            else {k: branch[k] for k in ("id", "name", "clientReferenceNumber", "phoneNumber")}
        )
        return shown

    # --- control helpers (tests change the world under a running simulator) -----------------------------

    def set_registration_minutes(self, registration_id: str, minutes: int) -> None:
        """Change a registration's duration (bulk: ``minutes * 60`` seconds) and its modification date."""
        row = self.registrations.find(registration_id)
        cols = self.registrations.cols
        cols["minutes"][row], cols["seconds"][row] = minutes, minutes * 60
        if cols["dirty"][row] in ("zero", "negative", "absurd", "unit_mismatch"):
            cols["dirty"][row] = ""
        cols["modification"][row] = self.now_ms()
        self.registrations.touch(("timeSpent", "modificationDate"))

    def set_registration_entry_date(self, registration_id: str, entry: datetime) -> None:
        """Move a registration to another (tz-aware) moment."""
        if entry.tzinfo is None:
            raise ValueError("entry must be time-zone aware")
        row = self.registrations.find(registration_id)
        cols = self.registrations.cols
        cols["entry"][row] = (entry - EPOCH) // _MS
        cols["entry_text"][row] = ""
        cols["modification"][row] = self.now_ms()
        self.registrations.touch(("entryDate", "modificationDate"))

    def skew_incident_total(self, incident: str, minutes: int) -> None:
        """Make the incident's own time totals disagree with its registrations by ``minutes``."""
        self.total_offsets[incident] = self.total_offsets.get(incident, 0) + minutes

    def delete_registration(self, registration_id: str) -> None:
        """Remove a registration (it disappears from every endpoint)."""
        row = self.registrations.find(registration_id)
        self.registrations.alive[row] = False
        self.deleted.append(registration_id)
        self.registrations.touch(())

    def add_registration(
        self,
        incident: str,
        minutes: int,
        entry: datetime,
        operator_id: str | None = None,
        reason_id: str | None = None,
        notes: str = "",
    ) -> str:
        """Add a registration to an incident (id or number); returns its id."""
        position = self.incidents.index.get(incident, self.incidents.by_number.get(incident))
        if position is None:
            raise ApiError(404, f"Incident '{incident}' not found")
        actor = self.refs["actors"].index[operator_id] if operator_id else self.api_operator
        group_id = self.operator_group.get(operator_id or "", "")
        return self.store_registration(
            position=position,
            minutes=minutes,
            entry_ms=(entry - EPOCH) // _MS,
            actor=actor,
            group=self.refs["groups"].index.get(group_id, -1),
            reason=self.refs["reasons"].index[reason_id] if reason_id else -1,
            notes=notes,
        )

    def store_registration(
        self, *, position: int, minutes: int, entry_ms: int, actor: int, group: int, reason: int, notes: str
    ) -> str:
        """Append one clean registration row; returns its id."""
        key, now = self.new_id(), self.now_ms()
        row: dict[str, list[Any]] = {"ids": [key], "parent": [position], "minutes": [minutes]}
        row.update(seconds=[minutes * 60])
        row.update(entry=[entry_ms], creation=[now], modification=[now], entry_text=[""], notes=[notes])
        row.update(operator=[actor], group=[group], reason=[reason], creator=[self.api_operator])
        row.update(modifier=[self.api_operator], dirty=[""])
        self.registrations.append(row)
        return key

    def insert_copies(self, template: int, count: int) -> None:
        """The "rows inserted between pages" fault: ``count`` new registrations equal to row ``template``.

        Equal sort keys and a higher position put them right after the template in any order, so every row
        behind them shifts and an offset-paging client sees a row of the previous page again.
        """
        cols = self.registrations.cols
        keys = [self.new_id() for _ in range(count)]
        rows: dict[str, list[Any]] = {name: [cols[name][template]] * count for name in cols}
        rows.update(ids=keys, dirty=[""] * count)
        self.registrations.append(rows)
        self.inserted.extend(keys)


_MS = pd.Timedelta(milliseconds=1).to_pytimedelta()


def _frames(world: World) -> dict[str, pd.DataFrame]:
    """The world's ``td_`` frames, rendered here when the world holds only its core."""
    if "td_registrations" in world.extra:
        return {k: v for k, v in world.extra.items() if k.startswith("td_")}
    return world_topdesk.render(world)


def _records(frame: pd.DataFrame, extra_dates: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows as dicts with their creation/modification (and ``extra_dates``) as epoch milliseconds."""
    out = frame.copy()
    for name in ("creationDate", "modificationDate", *extra_dates):
        if name in out:
            out[name] = ms_array(out[name])
    return out.to_dict("records")


@functools.cache
def _status_id(name: str) -> str:
    return stable_uuid("topdesk-status", name)


def _status(name: str) -> dict[str, str]:
    return {"id": _status_id(name), "name": name}


def _activity(row: dict[str, Any], actors: Names, groups: Names) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "briefDescription": row["briefDescription"],
        "status": _status(row["status"]),
        "archived": bool(row["archived"]),
        "operator": actors.ref(actors.index.get(row["operator.id"], -1)),
        "operatorGroup": groups.ref(groups.index.get(row["operatorGroup.id"], -1)),
        "estimatedTime": int(row["estimatedTime"]),
        "linkedBranches": [key for key in row["linkedBranches"].split(";") if key],
        "plannedStartDate": int(row["plannedStartDate"]),
        "creationDate": int(row["creationDate"]),
        "modificationDate": int(row["modificationDate"]),
    }


def _om_registration(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "timeSpent": int(row["timeSpent"]),
        "note": row["note"],
        "entryDate": int(row["entryDate"]),
        "creationDate": int(row["creationDate"]),
        "reason": {"id": row["reason.id"]} if row["reason.id"] else None,
        "operator": {"id": row["operator.id"]},
        "operatorGroup": {"id": row["operatorGroup.id"]} if row["operatorGroup.id"] else None,
    }


def _change(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "briefDescription": row["briefDescription"],
        "changeType": row["changeType"],
        "archived": bool(row["archived"]),
        "creationDate": int(row["creationDate"]),
        "modificationDate": int(row["modificationDate"]),
        "status": _status(row["status"]),
        "requester": row["requester.id"] or None,
        "requester_branch": row["requesterBranch.id"],
    }


def _change_activity(row: dict[str, Any], numbers: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "change": {"id": row["change.id"], "number": numbers.get(row["change.id"])},
        "briefDescription": row["briefDescription"],
        "activityType": "normal",
        "status": _status(row["status"]),
        "archived": False,
        "creationDate": int(row["creationDate"]),
        "modificationDate": int(row["modificationDate"]),
    }


def _operator(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "surName": row["surName"],
        "firstName": row["firstName"],
        "dynamicName": row["dynamicName"],
        "loginName": row["loginName"],
        "email": row["email"],
        "employeeNumber": row["employeeNumber"],
        "hourlyRate": float(row["hourlyRate"]),
        "apiAccount": bool(row["apiAccount"]),
        "hasApplicationPasswords": bool(row["apiAccount"]),
        "archived": bool(row["archived"]),
    }


def _address(country: dict[str, str] | None, **parts: str) -> dict[str, Any]:
    address = {"country": country, "street": "", "number": "", "county": "", "city": "", "postcode": ""}
    address.update(parts)
    address.update(addressMemo="", addressType=None)
    return address


def _branch(row: dict[str, Any], countries: dict, creator: dict, stamp: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "specification": "",
        "clientReferenceNumber": row["clientReferenceNumber"],
        "timeZone": row["timeZone"],
        "extraA": None,
        "extraB": None,
        "phone": row["phone"],
        "fax": "",
        "email": row["email"],
        "website": "",
        "address": _address(
            countries.get(row["country"]),
            street=row["street"],
            number=row["number"],
            city=row["city"],
            postcode=row["postcode"],
        ),
        "postalAddress": _address(None),
        "branchType": row["branchType"],
        "headBranch": None,
        "membershipNumber": "",
        "accountManager": None,
        "contact": None,
        "vatNumber": "",
        "attention": None,
        "attentionComment": "",
        "additionalInfo": "",
        "serviceWindowOption": "default",
        "serviceWindow": None,
        "optionalFields1": optional_fields(),
        "optionalFields2": optional_fields(),
        "notes": "",
        "archived": bool(row["archived"]),
        "creator": creator,
        "creationDate": stamp,
        "modifier": creator,
        "modificationDate": stamp,
    }


def _person(row: dict[str, Any], creator: dict, stamp: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "firstName": row["firstName"],
        "surName": row["surName"],
        "dynamicName": f"{row['surName']}, {row['firstName']}",
        "firstInitials": row["firstName"][:1] + "." if row["firstName"] else "",
        "prefixes": "",
        "birthName": "",
        "title": "",
        "language": None,
        "email": row["email"],
        "employeeNumber": row["employeeNumber"],
        "phoneNumber": row["phoneNumber"],
        "mobileNumber": "",
        "fax": "",
        "jobTitle": "",
        "department": None,
        "budgetHolder": None,
        "branch": row["branch.id"],
        "location": None,
        "archived": bool(row["archived"]),
        "isCaller": True,
        "isManager": False,
        "manager": None,
        "personExtraFieldA": None,
        "personExtraFieldB": None,
        "tasLoginName": "",
        "networkLoginName": "",
        "hasSspAccess": True,
        "optionalFields1": optional_fields(),
        "optionalFields2": optional_fields(),
        "creator": creator,
        "creationDate": stamp,
        "modifier": creator,
        "modificationDate": stamp,
    }
