"""The GetConnectors the AFAS sandbox serves, described as data: ids, columns, types, sort keys.

Standard Profit connectors carry the columns of AFAS's OpenAPI specs (reference §6–§8); the project's
own connectors (``Koppel_*``, decision §11.8/§11.14) carry the columns of docs/contracts.md §2 and
docs/afas-getconnectors.md, which is generated from this module (``markdown()``) and checked by a test.
Each connector reads one simulator table; ``sort_key`` is the unique key a client must order by.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_TYPES = ("string", "int", "decimal", "boolean", "date")
_CODES = {"s": "string", "i": "int", "d": "decimal", "b": "boolean", "t": "date"}
_CONTROL_TYPES = {"string": 1, "int": 5, "decimal": 6, "boolean": 3, "date": 4}


@dataclass(frozen=True)
class Column:
    """One GetConnector column as ``/metainfo/get/{id}`` describes it."""

    id: str
    data_type: str
    label: str
    length: int = 0
    decimals: int = 0

    def meta(self, position: int) -> dict[str, object]:
        """The field entry of ``/metainfo/get`` (``fieldId`` is a stable synthetic ``U`` number)."""
        return {
            "id": self.id,
            "fieldId": f"U{position + 1:03d}",
            "dataType": self.data_type,
            "label": self.label,
            "length": self.length,
            "controlType": _CONTROL_TYPES[self.data_type],
            "decimals": self.decimals,
            "decimalsFieldId": "",
        }


@dataclass(frozen=True)
class GetConnector:
    """A GetConnector: which table it reads and which columns it shows."""

    id: str
    description: str
    table: str
    columns: tuple[Column, ...]
    sort_key: tuple[str, ...]
    modified: str | None = None  # the modified-date column for incremental reads
    project_defined: bool = False

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-insensitive, as Profit matches field ids)."""
        folded = name.casefold()
        return next((c for c in self.columns if c.id.casefold() == folded), None)

    @property
    def types(self) -> dict[str, str]:
        """Column id → data type."""
        return {c.id: c.data_type for c in self.columns}


def _cols(*specs: str) -> tuple[Column, ...]:
    """Columns from ``"Id type[length] Label"`` specs, type ``s i d b t`` (``d`` has 2 decimals)."""
    result = []
    for spec in specs:
        name, kind, label = spec.split(" ", 2)
        code, length = kind[0], int(kind[1:] or 0)
        data_type = _CODES[code]
        defaults = {"int": 9, "decimal": 12, "boolean": 1, "date": 10}
        result.append(
            Column(name, data_type, label, length or defaults.get(data_type, 0), 2 if code == "d" else 0)
        )
    return tuple(result)


_ADDRESS = ("AdressLine1 s255 Adresregel 1", "AdressLine3 s255 Adresregel 3", "AdressLine4 s255 Adresregel 4")
_AUDIT = ("CreateDate t Aangemaakt op", "ModifiedDate t Gewijzigd op")

CONNECTORS: tuple[GetConnector, ...] = (
    GetConnector(
        "Profit_Debtor",
        "Debiteuren",
        "debtors",
        _cols(
            "DebtorId s16 Debiteurnummer",
            "DebtorName s255 Naam debiteur",
            "BcCo s15 Nummer org./pers.",
            "SearchName s10 Zoeknaam",
            *_ADDRESS,
            "TelNr s30 Telefoonnr. werk",
            "Email s255 E-mail werk",
            "IBAN s34 IBAN-nummer",
            "VatNr s20 Btw-identificatienummer",
            "ChOfCommNr s30 KvK-nummer",
            "CollectAccount s16 Verzamelrekening",
            "PayCon s3 Betalingsvoorwaarde",
            "VatDuty s3 Btw-plicht",
            "Blocked b Geblokkeerd voor levering",
            "CreditLimit d Kredietlimiet",
            "CurrencyId s3 Valuta",
            "AutoPayment b Automatisch incasseren",
            *_AUDIT,
        ),
        ("DebtorId",),
        "ModifiedDate",
    ),
    GetConnector(
        "Profit_Administrations",
        "Administraties (Profit)",
        "administrations",
        _cols("AdminId i3 Administratie", "AdminNm s80 Naam administratie", "AdminCd s10 Administratiecode"),
        ("AdminId",),
    ),
    GetConnector(
        "Profit_Projects",
        "Projecten",
        "projects",
        _cols(
            "ProjectId s15 Projectnummer",
            "Description s255 Projectomschrijving",
            "UnitId i3 Projectadministratie",
            "ProjectGroup s15 Projectgroep",
            "CheckedOut b Gereed",
            "BcCo s15 Organisatie/persoon",
            "DebtorId s16 Verkooprelatie",
            "DateStart t Startdatum",
            "DateReady t Werkelijke datum gereed",
            "Chargeable b Doorbelasten",
            *_AUDIT,
        ),
        ("ProjectId",),
        "ModifiedDate",
    ),
    GetConnector(
        "Profit_Worktype",
        "Werksoorten",
        "worktypes",
        _cols("ItemCode s40 Itemcode", "Description s255 Omschrijving", *_AUDIT, "Group s15 Integratiegroep"),
        ("ItemCode",),
        "ModifiedDate",
    ),
    GetConnector(
        "Profit_Realization",
        "Nacalculatie",
        "realizations",
        _cols(
            "Identity i9 Regelnummer",
            "Year i4 Boekjaar",
            "PeriodId i3 Periode",
            "DateTime t Datum",
            "EmployeeId s15 Medewerker",
            "ProjectId s15 Projectnummer",
            "Description s255 Omschrijving",
            "ItemType s10 Type item",
            "ItemCodeId s40 Itemcode",
            "InitId s15 Eenheid",
            "QuantityUnit d Aantal eenheden",
            "Chargeable b Doorbelasten",
            "Approved b Akkoord",
            "Prepared b Gereed",
            "DateModified t Laatst gewijzigd",
            "SystemDate t Datum aangemaakt",
        ),
        ("Identity",),
        "DateModified",
    ),
    GetConnector(
        "Profit_periods_per_administration",
        "Geblokkeerde perioden per administratie",
        "periods",
        _cols(
            "Unit i3 Administratie",
            "Year i4 Boekjaar",
            "Period i3 Periode",
            "PeriodDesc s50 Omschrijving",
            "DateFrom t Datum vanaf",
            "DateTo t Datum t/m",
            "Blocked b Geblokkeerd",
            "Periodtable i3 Periodetabel",
            "TableDesc s50 Omschrijving periodetabel",
        ),
        ("Unit", "Year", "Period"),
    ),
    GetConnector(
        "Profit_Contacts",
        "Contacten",
        "contacts",
        _cols(
            "Type s3 Soort contact",
            "ContactId i9 Contactnummer",
            "Name s255 Naam",
            "OrgNumber s15 Nummer organisatie",
            "PerNumber s15 Nummer persoon",
            "Department s255 Afdeling",
            "Blocked b Geblokkeerd",
            "AddressLine1 s255 Adresregel 1",
            "AddressLine3 s255 Adresregel 3",
            "AddressLine4 s255 Adresregel 4",
            "TelWork s30 Telefoonnr. werk",
            "MobWork s30 Mobiel werk",
            "MailWork s255 E-mail werk",
            "Note s255 Opmerking",
            "Function s50 Functie",
            "FunctionCard s50 Functie op visitekaartje",
            "FullName s255 Roepnaam voorvoegsel achternaam",
            "Gender s1 Geslacht",
            "TelPrivate s30 Telefoonnr. privé",
            "MobPrivate s30 Mobiel privé",
            "MailPrivate s255 E-mail privé",
            *_AUDIT,
        ),
        ("ContactId",),
        "ModifiedDate",
    ),
    GetConnector(
        "Profit_OrgPer",
        "Organisaties en personen",
        "relations",
        _cols(
            "BcCo s15 Nummer",
            "Type s1 Soort",
            "SearchName s10 Zoeknaam",
            "Name s255 Naam",
            *_ADDRESS,
            "TelWork s30 Telefoonnr. werk",
            "MailWork s255 E-mail werk",
            "Homepage s255 Website",
            "Note s255 Opmerking",
            "ChOfCommNr s30 KvK-nummer",
            "DateBirth t Geboortedatum",
            "BSN s9 BSN",
        ),
        ("BcCo",),
    ),
    GetConnector(
        "Profit_Illness",
        "Verzuim",
        "illness",
        _cols(
            "ActionId i9 Actiecode",
            "GUID s38 GUID",
            "EmployerId s15 Werkgever",
            "EmployeeId s15 Medewerker",
            "BSN s9 BSN",
            "AbsenceId i9 Verzuimmelding",
            "StartDate t Begindatum/-tijd",
            "EndDate t Einddatum/-tijd",
            "AbsenceTypeId s5 Type verzuim code",
            "AbsenceTypeDesc s50 Type verzuim",
            "ReasonId s5 Reden verzuim code",
            "ReasonDesc s50 Reden verzuim",
            "Presence d Aanwezigheidspercentage",
            "TypeWorkResumption s5 Soort werkhervatting code",
            "TypeWorkResumptionDesc s50 Soort werkhervatting",
            "Phone s30 Telefoonnr.",
            "Street s255 Straat",
            "HouseNumber i9 Huisnummer",
            "AddNumber s30 Toevoeging",
            "ZIPCode s10 Postcode",
            "City s50 Woonplaats",
            "Address4 s50 Land",
            "ModifiedDate t Gewijzigd op",
            "ReportDate t Begin verzuimmelding",
            "ExEndDate t Verwachte einddatum",
            "FirstDay i1 Eerste dag aanwezig",
            "DvId i9 Dienstverband",
            "Continuous b Doorlopend verzuim",
            "Vangnet i1 Vangnetregeling",
            "NoStatistic i1 Uitsluiten van statistiek",
            "ReportEndDate t Einde verzuimmelding",
            "ReasonEnd s5 Reden afsluiten code",
            "PresentLastDay i1 Laatste dag aanwezig",
            "WAO d WAO/WIA-percentage",
            "ApplyQualifyingDays i1 Wachtdagen toepassen",
            "RecoveredCode s5 Code hersteld",
            "HourWeekPresent i3 Aanwezigheidsuren per week",
            "PresenceTherapy d Aanwezigheidspercentage AT",
            "HourWeekPresentTherapy i3 AT-uren per week",
            "NursingAddress s255 Naam verpleegadres",
        ),
        ("AbsenceId",),
        "ModifiedDate",
    ),
    GetConnector(
        "Profit_Users",
        "Gebruikers",
        "users",
        _cols(
            "UserId s50 Gebruiker",
            "Description s255 Omschrijving",
            "UPN s255 UPN",
            "Blocked b Geblokkeerd",
            "Email s255 E-mail",
            "Windows b Profit Windows",
            "Connector b Connector",
            "OutSite b OutSite",
            "InSite b InSite",
            "PersonId s15 Persoonsnummer",
            "EmployeeId s15 Medewerkercode",
        ),
        ("UserId",),
    ),
    GetConnector(
        "Profit_Journals",
        "Dagboeken",
        "journals",
        _cols(
            "UnitId i3 Administratie",
            "JournalId s6 Dagboek",
            "Description s255 Omschrijving",
            "JournalType s5 Dagboeksoort code",
            "Blocked b Geblokkeerd",
        ),
        ("UnitId", "JournalId"),
    ),
    GetConnector(
        "Profit_VAT_code",
        "Btw-codes",
        "vat_codes",
        _cols(
            "VatCode s3 Btw-code",
            "Description s255 Omschrijving",
            "AccountNr s16 Rekening",
            "VatPerc d Percentage",
            "VatDuty s3 Btw-plicht",
            "Blocked b Geblokkeerd",
            "VatMethod s5 Berekeningsmethode",
            "VatType s5 Code inkoop/verkoop",
        ),
        ("VatCode",),
    ),
    GetConnector(
        "Profit_Allocation_Assigments",
        "Toewijzing verbijzonderingscodes aan rekeningen",
        "allocations",
        _cols(
            "Unit i3 Administratie",
            "Account s16 Rekening",
            "DimAx s5 Verbijzonderingsas",
            "AxDescription s50 Omschrijving as",
            "DimCode s15 Verbijzonderingscode",
            "CodeDescription s50 Omschrijving code",
        ),
        ("Unit", "Account", "DimAx", "DimCode"),
    ),
    GetConnector(
        "Koppel_Units",
        "Koppel: eenheden (BiUn op factuurregels)",
        "units",
        _cols("UnitId s15 Eenheid", "Description s50 Omschrijving"),
        ("UnitId",),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_Sales_Prices",
        "Koppel: verkoopprijzen per werksoort (algemeen en per debiteur)",
        "sales_prices",
        _cols("ItemCode s40 Itemcode", "DebtorId s16 Debiteur", "Price d Prijs", "DateStart t Ingangsdatum"),
        ("ItemCode", "DebtorId", "DateStart"),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_DirectInvoices",
        "Koppel: directe facturen (kop) met referentie",
        "invoices",
        _cols(
            "OrNu s12 Nummer",
            "DbId s16 Verkooprelatie",
            "RfCs s100 Referentie",
            "Fref s32 Factuurreferentie",
            "PrId s15 Project",
            "OrDa t Datum",
            "Unit i3 Administratie",
            "Ds s255 Opmerking",
        ),
        ("OrNu",),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_DirectInvoiceLines",
        "Koppel: regels van directe facturen",
        "invoice_lines",
        _cols(
            "OrNu s12 Nummer",
            "GuLi s38 Regel-GUID",
            "VaIt s10 Type item",
            "ItCd s40 Itemcode",
            "Ds s255 Omschrijving",
            "BiUn s15 Eenheid",
            "QuUn d Aantal eenheden",
            "Upri d Prijs per eenheid",
        ),
        ("GuLi",),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_Entries",
        "Koppel: journaalposten (regels) met boekstuknummer",
        "entries",
        _cols(
            "UnId i3 Administratie",
            "JoCo s6 Dagboek",
            "Year i4 Boekjaar",
            "Peri i3 Periode",
            "EnNo i9 Boekingsnummer",
            "BpNr s32 Boekstuknummer",
            "InId s12 Factuurnummer",
            "VaAs s1 Kenmerk rekening",
            "AcNr s16 Rekeningnummer",
            "EnDa t Datum boeking",
            "Ds s255 Omschrijving boeking",
            "AmDe d Bedrag debet",
            "AmCr d Bedrag credit",
            "VaId s3 Btw-code",
        ),
        ("UnId", "EnNo"),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_Realizations",
        "Koppel: nacalculatieregels met externe sleutel",
        "realizations",
        _cols(
            "Identity i9 Regelnummer",
            "XpRe s40 Externe sleutel",
            "ProjectId s15 Projectnummer",
            "DebtorId s16 Verkooprelatie",
            "DateTime t Datum",
            "ItemCodeId s40 Itemcode",
            "QuantityUnit d Aantal eenheden",
            "EmployeeId s15 Medewerker",
            "Description s255 Omschrijving",
        ),
        ("Identity",),
        project_defined=True,
    ),
    GetConnector(
        "Koppel_HR_OrgUnits",
        "Koppel HR: organisatorische eenheden",
        "org_units",
        _cols(
            "OrgUnitId s10 Organisatorische eenheid",
            "Description s50 Omschrijving",
            "ParentId s10 Rapporteert aan",
            "ManagerId s15 Manager",
            "ModifiedDate t Gewijzigd op",
        ),
        ("OrgUnitId",),
        "ModifiedDate",
        project_defined=True,
    ),
    GetConnector(
        "Koppel_HR_Employees",
        "Koppel HR: medewerkers",
        "employees",
        _cols(
            "EmployeeId s15 Medewerker",
            "FirstName s50 Voornaam",
            "Prefix s15 Voorvoegsel",
            "LastName s80 Achternaam",
            "BirthDate t Geboortedatum",
            "Email s255 E-mail werk",
            "Gender s1 Geslacht",
            "ModifiedDate t Gewijzigd op",
        ),
        ("EmployeeId",),
        "ModifiedDate",
        project_defined=True,
    ),
    GetConnector(
        "Koppel_HR_Employments",
        "Koppel HR: dienstverbanden met organisatorische eenheid, functie en salaris",
        "employments",
        _cols(
            "EmploymentKey s30 Sleutel (medewerker.dienstverband)",
            "EmployeeId s15 Medewerker",
            "DvId i9 Dienstverband",
            "DvSn i9 Volgnummer dienstverband",
            "EmployerId s15 Werkgever",
            "OrgUnitId s10 Organisatorische eenheid",
            "Function s50 Functie",
            "StartDate t Begindatum",
            "EndDate t Einddatum",
            "HoursPerWeek d Uren per week",
            "SalaryMonthly d Salaris per maand",
            "SalaryFourWeekly d Salaris per 4 weken",
            "SvWage d SV-loon",
            "ModifiedDate t Gewijzigd op",
        ),
        ("EmploymentKey",),
        "ModifiedDate",
        project_defined=True,
    ),
)

BY_ID: dict[str, GetConnector] = {c.id.casefold(): c for c in CONNECTORS}


def get_connector(connector_id: str) -> GetConnector | None:
    """The served GetConnector with this id (case-insensitive), or ``None``."""
    return BY_ID.get(connector_id.casefold())


def markdown() -> str:
    """The connector tables of docs/afas-getconnectors.md, generated so the document cannot drift."""
    parts = []
    for connector in CONNECTORS:
        kind = "project-defined" if connector.project_defined else "standard Profit"
        parts.append(f"### `{connector.id}` ({kind})\n\n")
        parts.append(f"{connector.description}. Sort key: `{','.join(connector.sort_key)}`.")
        if connector.modified:
            parts.append(f" Incremental reads: filter `{connector.modified}` with operator 2 (>=) or 4 (>).")
        parts.append("\n\n| column | dataType | length | label |\n|---|---|---|---|\n")
        for column in connector.columns:
            size = f"{column.length},{column.decimals}" if column.decimals else str(column.length)
            parts.append(f"| `{column.id}` | {column.data_type} | {size} | {column.label} |\n")
        parts.append("\n")
    return "".join(parts).rstrip("\n") + "\n"
