"""What a tenant's OData reporting feed offers: its entity sets and their properties.

The service document (``/services/reporting/v2/odata/``) lists the entity sets; ``$metadata`` (CSDL XML)
gives each set's entity type and properties. The CSDL is read with a narrow pattern reader for the three
elements needed (``EntitySet``, ``EntityType``, ``Property``), never an XML parser that would resolve
entities. An operator uses this (``koppel topdesk sources``) to fill ``[topdesk.entity_sets]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.errors import RequestRejected
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import ODATA

_ATTRS = re.compile(r'(\w+)="([^"]*)"')
_SET = re.compile(r"<(?:\w+:)?EntitySet\b([^>]*)/?>")
_TYPE = re.compile(r"<(?:\w+:)?EntityType\b([^>]*)>(.*?)</(?:\w+:)?EntityType>", re.DOTALL)
_PROPERTY = re.compile(r"<(?:\w+:)?Property\b([^>]*)/?>")


@dataclass(frozen=True)
class EntitySet:
    """One entity set and its properties (name → Edm type)."""

    name: str
    properties: Mapping[str, str]


def parse_metadata(xml: str) -> list[EntitySet]:
    """Entity sets with their properties from a CSDL document (sets without a known type: no properties)."""
    types: dict[str, dict[str, str]] = {}
    for attrs, body in _TYPE.findall(xml):
        name = dict(_ATTRS.findall(attrs)).get("Name", "")
        props = [dict(_ATTRS.findall(p)) for p in _PROPERTY.findall(body)]
        types[name] = {p["Name"]: p.get("Type", "") for p in props if "Name" in p}
    sets = []
    for attrs in _SET.findall(xml):
        found = dict(_ATTRS.findall(attrs))
        if "Name" in found:
            type_name = found.get("EntityType", "").rsplit(".", 1)[-1]
            sets.append(EntitySet(found["Name"], types.get(type_name, {})))
    return sets


async def odata_catalog(client: TopdeskClient) -> list[EntitySet]:
    """The tenant's entity sets: from ``$metadata`` when it answers, else the service document's names."""
    try:
        metadata = await client.get_text(f"{ODATA}/$metadata")
    except RequestRejected:  # a feed without $metadata: the names alone
        metadata = ""
    sets = parse_metadata(metadata) if metadata else []
    if sets:
        return sets
    service = await client.get_json(f"{ODATA}/")
    listed = service.get("value", []) if isinstance(service, Mapping) else []
    return [EntitySet(str(s["name"]), {}) for s in listed if isinstance(s, Mapping) and s.get("name")]
