"""The AFAS Profit REST client: GetConnector reads, UpdateConnector writes, look-up by reference.

Use it as an async context manager so its connection pool is closed::

    async with AfasClient.from_settings(settings) as afas:
        debtors = await afas.read_frame("Profit_Debtor")
        keys = await afas.insert_once("FbDirectInvoice", invoice, reference=Reference(...))

Transport, retries, limits and redaction live in ``connectors.http``; error classification in
``connectors.afas.errors``; the connectors it reads are described in ``connectors.afas.getconnectors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd

from connectors.afas.auth import auth_from_settings, auth_hint
from connectors.afas.errors import DEFAULT_TRANSIENT_RULES, AfasClassifier, TransientRule
from connectors.afas.filters import Filter, FilterSpec, and_each, filter_params, groups_of
from connectors.afas.frames import to_frame
from connectors.afas.getconnectors import REGISTRY, GetConnector, lookup
from connectors.afas.payloads import Element, Keys, Reference, body, delete_path, parse_keys, root_name
from connectors.afas.settings import AfasSettings
from connectors.errors import (
    AuthError,
    ConnectorError,
    ProtocolError,
    QueryTooLong,
    UncertainOutcome,
)
from connectors.http import ClientLifecycle, HttpConfig, HttpLayer, RetryPolicy, Sleep, Where, decode_json
from connectors.paging import KeysetPaginator, OffsetPaginator, Page, PageRequest, Paginator, paginate
from connectors.redaction import get_logger

log = get_logger(__name__)

SYSTEM = "AFAS"
MAX_QUERY_CHARS = 2049  # from "?" on, including it; longer → 404 (reference §1)
PAGE_PARAMS_WORST = {"skip": "9999999999", "take": "99999"}  # room kept for paging when chunking filters
AFAS_POLICY = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=120.0, max_total_seconds=900.0)


class AfasClient(ClientLifecycle):
    """One AFAS environment: reads GetConnectors into rows and frames, writes UpdateConnectors."""

    def __init__(self, http: HttpLayer, *, registry: dict[str, GetConnector] | None = None) -> None:
        self._http = http
        self._registry = dict(REGISTRY if registry is None else registry)
        self._metainfo: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def from_settings(
        cls,
        settings: AfasSettings,
        *,
        policy: RetryPolicy = AFAS_POLICY,
        transient_rules: Sequence[TransientRule] = DEFAULT_TRANSIENT_RULES,
        fallback_retry_after: float = 30.0,
        registry: dict[str, GetConnector] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        seed: int | None = None,
    ) -> AfasClient:
        """Build a client from settings; ``transport``/``sleep``/``seed`` are for tests."""
        auth, secrets = auth_from_settings(settings, transport=transport, sleep=sleep, seed=seed)
        headers = {"Accept": "application/json", "Accept-Language": settings.language}
        if settings.integration_id:
            headers["IntegrationId"] = settings.integration_id
        config = HttpConfig(
            system=SYSTEM,
            base_url=settings.rest_base_url,
            auth=auth,
            headers=headers,
            read_timeout=settings.timeout_seconds,
            max_concurrency=settings.max_concurrency,
            policy=policy,
            classifier=AfasClassifier(
                tuple(transient_rules), fallback_retry_after, auth_hint=auth_hint(settings)
            ),
            secrets=secrets,
            transport=transport,
            seed=seed,
        )
        http = HttpLayer(config, sleep=sleep)
        return cls(http, registry=registry)

    def __repr__(self) -> str:
        return f"AfasClient({self._http!r})"

    async def profit_version(self) -> str:
        """AFAS's version string: a cheap check of URL and token."""
        response = await self._http.request("GET", "profitversion", endpoint="profitversion")
        data = decode_json(response, Where(SYSTEM, "GET", "profitversion"))
        if not isinstance(data, dict) or "version" not in data:
            raise ProtocolError(f"profitversion answer without 'version': {str(data)[:200]!r}", system=SYSTEM)
        return str(data["version"])

    async def metainfo(self, connector: str) -> list[dict[str, Any]]:
        """The field list of a GetConnector (``/metainfo/get/{id}``), cached per client."""
        if connector not in self._metainfo:
            path = f"metainfo/get/{connector}"
            response = await self._http.request("GET", path, endpoint="metainfo/get/{connector}")
            data = decode_json(response, Where(SYSTEM, "GET", path))
            fields = data.get("fields") if isinstance(data, dict) else None
            if not isinstance(fields, list):
                raise ProtocolError(
                    f"metainfo of {connector} has no field list", system=SYSTEM, endpoint=path
                )
            self._metainfo[connector] = fields
        return self._metainfo[connector]

    def describe(self, connector: str | GetConnector) -> GetConnector:
        """The registered description of a GetConnector (sort key, paging, page size)."""
        return lookup(connector, self._registry)

    async def iter_pages(
        self,
        connector: str | GetConnector,
        *,
        filters: FilterSpec = None,
        order_by: str | Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of a GetConnector page by page, always sorted on a unique key."""
        spec = self.describe(connector)
        take = page_size or spec.take
        if take < 1:
            raise ValueError("take must be at least 1 (AFAS's -1 'everything' is never used)")
        order = (
            spec.order_by
            if order_by is None
            else (order_by if isinstance(order_by, str) else ",".join(order_by))
        )
        keyset = spec.keyset and order_by is None
        paginator: Paginator = (
            KeysetPaginator(spec.sort_key[0], take) if keyset else OffsetPaginator("skip", "take", take)
        )
        groups = groups_of(filters)

        async def fetch(request: PageRequest) -> Page:
            if request.after is not None:
                params = filter_params(and_each(groups, Filter(spec.sort_key[0], ">", request.after)))
            else:
                params = filter_params(groups)
            paging = {"skip": 0, "take": take} if keyset else request.params
            return await self._get_page(spec.id, {**params, "orderbyfieldids": order, **paging})

        async for page in paginate(fetch, paginator):
            yield page.rows

    async def iter_rows(self, connector: str | GetConnector, **query: Any) -> AsyncIterator[dict[str, Any]]:
        """The rows of a GetConnector one by one (same arguments as ``iter_pages``)."""
        async for rows in self.iter_pages(connector, **query):
            for row in rows:
                yield row

    async def read_frame(self, connector: str | GetConnector, **query: Any) -> pd.DataFrame:
        """All rows as a DataFrame typed by the connector's metainfo (datetimes Europe/Amsterdam)."""
        spec = self.describe(connector)
        rows: list[dict[str, Any]] = []
        async for page in self.iter_pages(spec, **query):
            rows.extend(page)
        return to_frame(rows, await self.metainfo(spec.id))

    async def _get_page(self, connector: str, params: dict[str, Any]) -> Page:
        path = f"connectors/{connector}"
        check_query_length(params, Where(SYSTEM, "GET", path))
        response = await self._http.request("GET", path, params=params, endpoint=path)
        data = decode_json(response, Where(SYSTEM, "GET", path), decimals=True)
        rows = data.get("rows") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ProtocolError(
                f"GetConnector answer without 'rows': {str(data)[:200]!r}", system=SYSTEM, endpoint=path
            )
        return Page(rows=rows, status=response.status_code)

    async def insert(self, connector: str, payload: Any) -> Keys:
        """POST a new document; returns the keys AFAS assigned (possibly none)."""
        return await self._write("POST", connector, payload)

    async def update(self, connector: str, payload: Any) -> Keys:
        """PUT changes to an existing document (identified by the keys inside the payload)."""
        return await self._write("PUT", connector, payload)

    async def delete(
        self, connector: str, keys: Mapping[str, Any], *, object_name: str | None = None
    ) -> Keys:
        """DELETE ``/connectors/{Conn}/{Object}/@{Key}/{value}`` (composite keys comma-joined)."""
        path = delete_path(connector, keys, object_name=object_name)
        response = await self._http.request("DELETE", path, endpoint=f"connectors/{connector}")
        return parse_keys(decode_json(response, Where(SYSTEM, "DELETE", path)))

    async def _write(self, method: str, connector: str, payload: Any) -> Keys:
        path = f"connectors/{connector}"
        response = await self._http.request(method, path, body=as_body(connector, payload), endpoint=path)
        return parse_keys(decode_json(response, Where(SYSTEM, method, path)))

    async def insert_batch(
        self,
        connector: str,
        payloads: Sequence[Mapping[str, Any]],
        references: Sequence[Reference],
        *,
        attempts: int = 3,
    ) -> BatchAnswer:
        """POST several documents of ``connector`` as ONE body: one AFAS transaction, all or nothing.

        ``payloads[i]`` is the full body of document ``i`` (its elements are concatenated in order) and
        ``references[i]`` where AFAS shows it. After an uncertain outcome every reference is looked up
        (chunked within the URL limit) and only what AFAS does not hold is posted again, at most
        ``attempts`` posts in all. Business and other errors are returned in the answer, not raised
        (except ``AuthError``): the caller decides to bisect, fail or mark uncertain.
        """
        if len(payloads) != len(references) or not payloads:
            raise ValueError("insert_batch needs one reference per payload, and at least one payload")
        found: list[Keys | None] = [None] * len(payloads)
        error: ConnectorError | None = None
        for _ in range(attempts):
            todo = [i for i, keys in enumerate(found) if keys is None]
            if not todo:
                break
            try:
                keys = await self._post_batch(
                    connector, [payloads[i] for i in todo], [references[i] for i in todo]
                )
            except UncertainOutcome as exc:
                error = exc
                log.warning("AFAS %s: %s; looking %d references up", connector, exc.message, len(todo))
                try:
                    recovered = await self.find_by_references([references[i] for i in todo])
                except ConnectorError as lookup:
                    message = f"{exc.message}; and the look-up of the batch failed: {lookup.message}"
                    return BatchAnswer(found, UncertainOutcome(message, system=SYSTEM, method="POST"))
                for i, value in zip(todo, recovered, strict=True):
                    found[i] = value
                continue
            except AuthError:
                raise  # a configuration error: the caller stops the run
            except ConnectorError as exc:  # BusinessError: the body was refused, nothing of it landed
                return BatchAnswer(found, exc)
            for i, value in zip(todo, keys, strict=True):
                found[i] = value
            error = None
        return BatchAnswer(found, error if any(k is None for k in found) else None)

    async def _post_batch(
        self, connector: str, payloads: Sequence[Mapping[str, Any]], references: Sequence[Reference]
    ) -> list[Keys]:
        """One POST of the concatenated elements; keys per document (from the answer or by reference)."""
        counts, elements = [], []
        for payload in payloads:
            items = elements_of(connector, payload)
            counts.append(len(items))
            elements.extend(items)
        path = f"connectors/{connector}"
        response = await self._http.request("POST", path, body=body(connector, elements), endpoint=path)
        answer = decode_json(response, Where(SYSTEM, "POST", path))
        per_document = keys_per_document(answer, counts)
        if per_document is not None:
            return per_document
        looked_up = await self.find_by_references(references)  # the answer has no key set per element
        return [keys if keys is not None else Keys() for keys in looked_up]

    async def find_by_references(self, references: Sequence[Reference]) -> list[Keys | None]:
        """The keys of the document carrying each reference (``None``: AFAS has none), in order.

        References of one connector and field are read together: OR-ed ``=`` filters, as many per
        request as the 2049-character query string allows. A reference not found in its ``field`` is
        looked up in its ``earlier_fields`` next, one field after the other.
        """
        answers = await self._find_in_fields([r.in_field(r.field) for r in references])
        depth = max((len(r.earlier_fields) for r in references), default=0)
        for level in range(depth):
            todo = [
                i for i, r in enumerate(references) if answers[i] is None and len(r.earlier_fields) > level
            ]
            if not todo:
                break
            found = await self._find_in_fields(
                [references[i].in_field(references[i].earlier_fields[level]) for i in todo]
            )
            for i, keys in zip(todo, found, strict=True):
                answers[i] = keys
        return answers

    async def _find_in_fields(self, references: Sequence[Reference]) -> list[Keys | None]:
        answers: list[Keys | None] = [None] * len(references)
        groups: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
        for i, reference in enumerate(references):
            groups.setdefault((reference.connector, reference.field, reference.key_fields), []).append(i)
        for (connector, field_id, key_fields), indexes in groups.items():
            spec = self.describe(connector)
            fields = key_fields or spec.key_fields or spec.sort_key
            values = [references[i].value for i in indexes]
            rows_by_value: dict[str, dict[str, Any]] = {}
            for chunk in reference_chunks(spec, field_id, values):
                filters = [[Filter(field_id, "=", value)] for value in chunk]
                async for row in self.iter_rows(spec, filters=filters, order_by=spec.order_by):
                    rows_by_value.setdefault(str(row.get(field_id, "")).casefold(), row)
            for i in indexes:
                match = rows_by_value.get(references[i].value.casefold())
                if match is not None:
                    answers[i] = Keys({k: match.get(k) for k in fields}, object_name=spec.id, recovered=True)
        return answers

    async def find_by_reference(self, reference: Reference) -> Keys | None:
        """The keys of the document carrying ``reference``, or ``None`` when AFAS has none.

        Looks in ``reference.field``, then in each of its ``earlier_fields`` until one matches.
        """
        for name in (reference.field, *reference.earlier_fields):
            found = await self._find_in_field(reference.in_field(name))
            if found is not None:
                return found
        return None

    async def _find_in_field(self, reference: Reference) -> Keys | None:
        spec = self.describe(reference.connector)
        key_fields = reference.key_fields or spec.key_fields or spec.sort_key
        rows = [
            row async for row in self.iter_rows(spec, filters=Filter(reference.field, "=", reference.value))
        ]
        if not rows:
            return None
        distinct = {tuple(row.get(k) for k in key_fields) for row in rows}
        if len(distinct) > 1:
            log.warning(
                "AFAS: %d documents carry %s=%s in %s",
                len(distinct),
                reference.field,
                reference.value,
                spec.id,
            )
        first = rows[0]
        return Keys({k: first.get(k) for k in key_fields}, object_name=spec.id, recovered=True)

    async def insert_once(
        self, connector: str, payload: Any, *, reference: Reference, attempts: int = 3
    ) -> Keys:
        """Insert unless already there: after an ``UncertainOutcome`` look the document up before re-posting.

        Found → its keys with ``recovered=True``; not found → post again (at most ``attempts`` posts).
        """
        last: UncertainOutcome | None = None
        for _ in range(attempts):
            try:
                return await self.insert(connector, payload)
            except UncertainOutcome as exc:
                last = exc
                log.warning("AFAS %s: %s; looking it up by %s", connector, exc.message, reference.field)
            found = await self._look_up_after(reference, last)
            if found is not None:
                return found
        assert last is not None  # noqa: S101 — the loop only ends here after an uncertain outcome
        raise last

    async def _look_up_after(self, reference: Reference, uncertain: UncertainOutcome) -> Keys | None:
        try:
            return await self.find_by_reference(reference)
        except ConnectorError as exc:
            raise UncertainOutcome(
                f"{uncertain.message}; and the look-up by {reference.field} failed: {exc.message}",
                system=SYSTEM,
                method="POST",
                endpoint=uncertain.endpoint,
            ) from None


def as_body(connector: str, payload: Any) -> dict[str, Any]:
    """A full UpdateConnector body from a body, one element or a list of elements."""
    if isinstance(payload, Mapping) and len(payload) == 1:
        ((name, inner),) = payload.items()
        if name in (connector, root_name(connector)) and isinstance(inner, Mapping) and "Element" in inner:
            return {root_name(connector): dict(inner)}
    if isinstance(payload, Mapping):
        return body(connector, dict(payload))
    elements: list[Element] = [dict(e) for e in payload]
    if not elements:
        raise ValueError(f"empty payload for {connector}")
    return body(connector, elements)


def check_query_length(params: Mapping[str, Any], where: Where) -> None:
    """Raise ``QueryTooLong`` before sending a query string AFAS would answer with 404."""
    length = len("?" + str(httpx.QueryParams(dict(params))))
    if length > MAX_QUERY_CHARS:
        raise QueryTooLong(
            f"query string of {length} characters exceeds AFAS's {MAX_QUERY_CHARS}", **where.kwargs()
        )


@dataclass(frozen=True)
class BatchAnswer:
    """What ``insert_batch`` achieved: keys per document (``None``: not in AFAS) and what stopped the rest.

    ``error`` is ``None`` when every document is in AFAS; a ``BusinessError`` means AFAS refused the body
    of the documents without keys (nothing of it landed); anything else leaves them uncertain.
    """

    keys: list[Keys | None]
    error: ConnectorError | None = None


def elements_of(connector: str, payload: Mapping[str, Any]) -> list[Element]:
    """The elements of one document's body (``{"<Root>": {"Element": one | [several]}}``)."""
    inner = as_body(connector, payload)[root_name(connector)]["Element"]
    return [dict(e) for e in inner] if isinstance(inner, list) else [dict(inner)]


def keys_per_document(answer: Any, counts: Sequence[int]) -> list[Keys] | None:
    """Each document's keys (those of its first element) when the answer holds one key set per element.

    ``None`` when it does not (AFAS documents one key set for one element only, reference §5.2): the
    caller then looks the documents up by reference.
    """
    if sum(counts) == 1:
        return [parse_keys(answer)]
    inner = answer.get("results") if isinstance(answer, Mapping) else None
    if not isinstance(inner, Mapping) or len(inner) != 1:
        return None
    ((name, listed),) = inner.items()
    if not isinstance(listed, list) or len(listed) != sum(counts):
        return None
    if not all(isinstance(item, Mapping) for item in listed):
        return None
    out, start = [], 0
    for count in counts:
        out.append(
            Keys(
                {k: v for k, v in listed[start].items() if not isinstance(v, Mapping | list)},
                object_name=name,
            )
        )
        start += count
    return out


def reference_chunks(spec: GetConnector, field_id: str, values: Sequence[str]) -> list[list[str]]:
    """``values`` in chunks whose OR-ed ``=`` filters keep the query string within AFAS's limit."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for value in values:
        trial = [*current, value]
        if current and _query_length(spec, field_id, trial) > MAX_QUERY_CHARS:
            chunks.append(current)
            trial = [value]
        if _query_length(spec, field_id, trial) > MAX_QUERY_CHARS:
            raise ValueError(f"reference {value[:40]!r} alone is too long for an AFAS filter")
        current = trial
    if current:
        chunks.append(current)
    return chunks


def _query_length(spec: GetConnector, field_id: str, values: Sequence[str]) -> int:
    params = filter_params([[Filter(field_id, "=", v)] for v in values])
    full = {**params, "orderbyfieldids": spec.order_by, **PAGE_PARAMS_WORST}
    return len("?" + str(httpx.QueryParams(full)))
