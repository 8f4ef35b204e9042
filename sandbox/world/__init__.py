"""The seeded world both simulators serve: one coherent set of customers, projects, staff and work.

``generate_world(seed, scale)`` is deterministic: the same arguments give the same world, byte for byte
(``World.fingerprint()``). This module holds the *core* (who exists); ``sandbox/world/topdesk.py`` renders
the TOPdesk side (branches, persons, tickets, time registrations) and ``sandbox/world/afas.py`` the AFAS
side (debtors, projects, items, periods, HR) from it; the rendered frames are described by pandera schemas
(``topdesk_frames.py``, ``afas_frames.py``) that ``check_world`` validates.

The core frames (customers, contacts, projects, items, administrations, departments, operator groups,
operators, reasons, categories) are described, column by column, by the pandera schemas in
``sandbox/world/core_frames.py``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

DEFAULT_SEED = 42
DEFAULT_SCALE = 2_000  # registrations per month

_FIRST = [
    "Anne",
    "Bram",
    "Chantal",
    "Daan",
    "Eva",
    "Fleur",
    "Gijs",
    "Hanna",
    "Iris",
    "Joris",
    "Kees",
    "Lotte",
    "Mila",
    "Noah",
    "Olga",
    "Pieter",
    "Quinten",
    "Roos",
    "Sem",
    "Tess",
    "Ursula",
    "Vera",
    "Wim",
    "Zoë",
]
_LAST = [
    "de Vries",
    "Jansen",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "Kok",
    "Jacobs",
    "Çelik",
    "Øster",
]
_TRADE = [
    "Bouw",
    "Zorg",
    "Logistiek",
    "Advocaten",
    "Accountants",
    "Techniek",
    "Media",
    "Installaties",
    "Onderwijs",
    "Transport",
    "Makelaars",
    "Software",
    "Horeca",
    "Metaal",
    "Agro",
    "Energie",
]
_KIND = ["B.V.", "N.V.", "Groep", "& Partners", "Stichting", "Holding B.V.", "V.O.F."]
_CITIES = [
    ("1012 AB", "Amsterdam"),
    ("3011 AD", "Rotterdam"),
    ("2511 CV", "Den Haag"),
    ("3511 AX", "Utrecht"),
    ("5611 AZ", "Eindhoven"),
    ("9711 AA", "Groningen"),
    ("6811 AB", "Arnhem"),
    ("7511 AA", "Enschede"),
    ("4811 AA", "Breda"),
    ("8011 AA", "Zwolle"),
    ("6211 AA", "Maastricht"),
    ("2011 AA", "Haarlem"),
]
_STREETS = [
    "Kerkstraat",
    "Dorpsstraat",
    "Stationsweg",
    "Industrieweg",
    "Molenweg",
    "Schoolstraat",
    "Havenkade",
    "Parallelweg",
    "Nieuwstraat",
    "Beukenlaan",
]
ITEMS = [
    ("SUPPORT", "Support op afstand", "95.00"),
    ("CONSULT", "Consultancy", "125.00"),
    ("ONSITE", "Werk op locatie", "110.00"),
    ("PROJECT", "Projectwerk", "115.00"),
    ("SPOED", "Spoedwerk buiten kantoortijd", "145.00"),
]
REASONS = ["Normaal tarief", "Meerwerk", "Garantie", "Spoed", "Opleiding", "Intern overleg"]
CATEGORIES = {
    "Werkplek": ["Laptop", "Printer", "Wachtwoord reset"],
    "Netwerk": ["VPN", "Wifi", "Firewall"],
    "Applicaties": ["AFAS", "Office 365", "Maatwerk"],
    "Servers": ["Back-up", "Patching", "Storage"],
}
GROUPS = [
    ("Servicedesk", "85.00"),
    ("Tweede lijn", "105.00"),
    ("Netwerkbeheer", "115.00"),
    ("Consultancy", "125.00"),
    ("Field services", "95.00"),
    ("Ontwikkeling", "120.00"),
]
DEPARTMENTS = [
    ("INT-ICT", "Interne ICT", "4300", "100"),
    ("INT-HR", "HR & Facilitair", "4310", "200"),
    ("INT-VK", "Verkoop", "4320", "300"),
]


def stable_uuid(*parts: object) -> str:
    """A UUID derived from its parts, so ids do not depend on generation order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class World:
    """Everything both simulators serve, generated from ``seed`` and ``scale``."""

    seed: int
    scale: int
    anchor: date
    months: int
    customers: pd.DataFrame
    contacts: pd.DataFrame
    projects: pd.DataFrame
    items: pd.DataFrame
    administrations: pd.DataFrame
    departments: pd.DataFrame
    operator_groups: pd.DataFrame
    operators: pd.DataFrame
    reasons: pd.DataFrame
    categories: pd.DataFrame
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every frame of the world by name, core first, then the rendered sides in ``extra``."""
        core = {name: getattr(self, name) for name in _CORE_FRAMES}
        return {**core, **dict(sorted(self.extra.items()))}

    def fingerprint(self) -> str:
        """SHA-256 over every frame's CSV rendering: equal fingerprints mean byte-for-byte equal worlds."""
        digest = hashlib.sha256()
        for name, frame in self.frames().items():
            digest.update(name.encode())
            digest.update(frame.to_csv(index=False).encode())
        return digest.hexdigest()


_CORE_FRAMES = (
    "customers",
    "contacts",
    "projects",
    "items",
    "administrations",
    "departments",
    "operator_groups",
    "operators",
    "reasons",
    "categories",
)


def _customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    numbers = [f"{10001 + i}" for i in range(n)]
    trade = rng.choice(_TRADE, n)
    names = [f"{rng.choice(_LAST)} {t} {rng.choice(_KIND)}" for t in trade]
    city = rng.integers(0, len(_CITIES), n)
    side = rng.random(n)
    frame = pd.DataFrame(
        {
            "customer_number": numbers,
            "name": names,
            "street": rng.choice(_STREETS, n),
            "house_number": [str(x) for x in rng.integers(1, 250, n)],
            "postcode": [_CITIES[c][0] for c in city],
            "city": [_CITIES[c][1] for c in city],
            "country": "NL",
            "phone": [f"0{rng.integers(10, 80)}-{rng.integers(1000000, 9999999)}" for _ in range(n)],
            "email": [f"info@klant{num}.example.nl" for num in numbers],
            "vat_number": [f"NL{rng.integers(100000000, 999999999)}B01" for _ in range(n)],
            "coc_number": [f"{rng.integers(10000000, 99999999)}" for _ in range(n)],
            "blocked": rng.random(n) < 0.05,
            "in_afas": side >= 0.04,  # ~4 % only in TOPdesk: candidates for create-missing-debtors
            "in_topdesk": (side < 0.04) | (side >= 0.08),  # ~4 % only in AFAS: created by sync-companies
            "admin_id": np.where(rng.random(n) < 0.8, 1, 2).astype(int),
        }
    )
    return frame


def _contacts(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    person = 50001
    for number in customers["customer_number"]:
        for _ in range(int(rng.integers(1, 4))):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            handle = f"{first}.{last}".lower().replace(" ", "")
            rows.append(
                {
                    "person_number": str(person),
                    "customer_number": number,
                    "first_name": first,
                    "last_name": last,
                    "email": f"{handle}@klant{number}.example.nl",
                    "phone": f"06-{rng.integers(10000000, 99999999)}",
                }
            )
            person += 1
    return pd.DataFrame(rows)


def _projects(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for number, admin in zip(customers["customer_number"], customers["admin_id"], strict=True):
        count = int(rng.choice([1, 1, 1, 2, 3]))
        for k in range(count):
            rows.append(
                {
                    "project_id": f"P{number}-{k + 1:02d}",
                    "customer_number": number,
                    "description": "Servicecontract" if k == 0 else f"Project {k}",
                    "closed": bool(k > 0 and rng.random() < 0.15),
                    "is_default": k == 0,
                    "admin_id": int(admin),
                }
            )
    return pd.DataFrame(rows)


def _staff(rng: np.random.Generator, n_operators: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    groups = pd.DataFrame(
        {
            "id": [stable_uuid("group", name) for name, _ in GROUPS],
            "name": [name for name, _ in GROUPS],
            "hourly_rate": [rate for _, rate in GROUPS],
        }
    )
    group_of = rng.integers(0, len(GROUPS), n_operators)
    rows = []
    for i in range(n_operators):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        rows.append(
            {
                "id": stable_uuid("operator", i),
                "first_name": first,
                "last_name": last,
                "login": f"{first[0]}{last.replace(' ', '')}{i}".lower(),
                "group_id": groups["id"].iloc[group_of[i]],
                "hourly_rate": groups["hourly_rate"].iloc[group_of[i]],
                "employee_number": f"{1001 + i}",
            }
        )
    return groups, pd.DataFrame(rows)


def _categories() -> pd.DataFrame:
    rows = [
        {
            "id": stable_uuid("category", cat),
            "name": cat,
            "subcategory_id": stable_uuid("sub", cat, sub),
            "subcategory": sub,
        }
        for cat, subs in CATEGORIES.items()
        for sub in subs
    ]
    return pd.DataFrame(rows)


def generate_core(
    seed: int = DEFAULT_SEED, scale: int = DEFAULT_SCALE, anchor: date | None = None, months: int = 3
) -> World:
    """Generate the core of the world: customers, projects, items, staff and lookups.

    ``anchor`` is the first day of the month *after* the generated period (default: 2026-11-01);
    ``months`` months of work before it are generated by the side renderers.
    """
    rng = np.random.default_rng(seed)
    n_customers = max(12, min(20_000, scale // 12))
    n_operators = max(8, min(2_000, scale // 60))
    customers = _customers(rng, n_customers)
    groups, operators = _staff(rng, n_operators)
    return World(
        seed=seed,
        scale=scale,
        anchor=anchor or date(2026, 11, 1),
        months=months,
        customers=customers,
        contacts=_contacts(rng, customers),
        projects=_projects(rng, customers),
        items=pd.DataFrame(ITEMS, columns=["item_code", "description", "price"]).assign(unit="uur")[
            ["item_code", "description", "unit", "price"]
        ],
        administrations=pd.DataFrame(
            {"admin_id": [1, 2], "name": ["Koppel Diensten B.V.", "Koppel Zuid B.V."], "code": ["KD", "KZ"]}
        ),
        departments=pd.DataFrame(DEPARTMENTS, columns=["code", "name", "cost_account", "cost_centre"]).assign(
            admin_id=1
        ),
        operator_groups=groups,
        operators=operators,
        reasons=pd.DataFrame({"id": [stable_uuid("reason", r) for r in REASONS], "name": REASONS}),
        categories=_categories(),
    )


def generate_world(
    seed: int = DEFAULT_SEED,
    scale: int = DEFAULT_SCALE,
    anchor: date | None = None,
    months: int = 3,
    *,
    check: bool = False,
) -> World:
    """Generate the whole world: the core, then the TOPdesk and the AFAS side rendered from it.

    ``check`` validates every rendered frame against its schema (``check_world``); it costs more than
    generating a small world, so the test session checks each world it shares once.
    """
    from sandbox.world import afas as world_afas
    from sandbox.world import topdesk as world_topdesk

    world = generate_core(seed=seed, scale=scale, anchor=anchor, months=months)
    world.extra.update(world_topdesk.render(world))
    world.extra.update(world_afas.render(world))
    return check_world(world) if check else world


def check_world(world: World) -> World:
    """Validate the rendered frames against their pandera schemas and return the world.

    The schemas (``sandbox/world/core_frames.py``, ``topdesk_frames.py``, ``afas_frames.py``) are the
    description of the frames; a frame without a schema, or one that does not meet it, raises (pandera's
    ``SchemaErrors``, every failure at once).
    """
    from sandbox.world.afas_frames import FRAMES as AFAS_FRAMES
    from sandbox.world.core_frames import FRAMES as CORE_FRAMES
    from sandbox.world.topdesk_frames import FRAMES as TOPDESK_FRAMES

    for name, schema in CORE_FRAMES.items():
        schema.validate(getattr(world, name), lazy=True)

    schemas = {**TOPDESK_FRAMES, **AFAS_FRAMES}
    undescribed = sorted(set(world.extra) - set(schemas))
    if undescribed:
        raise ValueError(f"world frames without a schema: {', '.join(undescribed)}")
    for name, frame in world.extra.items():
        schemas[name].validate(frame, lazy=True)
    return world
