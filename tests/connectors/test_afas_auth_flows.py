"""Every AFAS-using flow end to end in each authentication mode.

The flows' own representative end-to-end tests are run again against a sandbox whose app connector is
classic-only (``KOPPEL_AFAS_AUTH=token``) or OAuth-only (``client_secret``, ``private_key_jwt``), so nothing
can fall back to a classic token. OAuth access tokens live 3 seconds here: every flow run outlives several
of them, so the refresh (and, for a token that dies early, the one retry) happens inside real runs, and the
tests' own read-backs prove nothing was posted twice.
"""

from __future__ import annotations

import logging
import os

import pytest

from sandbox.afas.state import AfasOptions
from sandbox.server import running_sandbox
from tasks.preflight import PreflightFailed
from tests import invoice_support
from tests.company_sync import test_company_sync_flows as company
from tests.company_sync.test_company_sync_flows import enabled_config  # noqa: F401 — a fixture used below
from tests.connectors.test_afas_auth import signed_assertions
from tests.hr_sync import test_hr_flows as hr
from tests.invoice_hours import test_invoice_hours_flow as invoicing

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

MODES = ["token", "client_secret", "private_key_jwt"]
TOKEN_LIFETIME = 3  # seconds


def sandbox_for(world, mode: str, monkeypatch, tmp_path):
    """A sandbox whose app connector takes only ``mode``, with Koppel's settings pointed at it."""
    options = AfasOptions(auth_mode="classic" if mode == "token" else "oauth", token_lifetime=TOKEN_LIFETIME)
    running = running_sandbox(world, options={"afas": options})
    sandbox = running.__enter__()
    for key, value in {**sandbox.env(), **sandbox.afas_env(mode)}.items():
        monkeypatch.setenv(key, value)
    if mode != "token":
        monkeypatch.delenv("KOPPEL_AFAS_TOKEN")
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return running, sandbox


@pytest.fixture
def world_sandbox(request, monkeypatch, tmp_path):
    world, mode = request.param
    running, sandbox = sandbox_for(world(), mode, monkeypatch, tmp_path)
    try:
        yield sandbox
    finally:
        running.__exit__(None, None, None)
    if request.node.name.startswith("test_refused"):
        return
    sim = sandbox.apps["afas"].state.sim
    if mode != "token":
        assert sim.oauth.issued >= 1  # really spoke OAuth
    assert all(error["status"] != 401 for error in sim.errors)  # no call was refused for its credentials


def params(world):
    return [pytest.param((world, mode), id=mode) for mode in MODES]


@pytest.mark.parametrize("world_sandbox", params(invoice_support.small_world), indirect=True)
def test_invoice_hours(prefect_harness, world_sandbox, caplog, monkeypatch, tmp_path) -> None:
    for name in (None, "httpx", "httpcore", "connectors", "prefect"):
        caplog.set_level(logging.DEBUG, logger=name)
    assertions = signed_assertions(monkeypatch)
    invoicing.test_end_to_end_conservation_and_afas_matches_the_plan_cent_by_cent(
        prefect_harness, world_sandbox
    )
    sim = world_sandbox.apps["afas"].state.sim
    posted = len(sim.posted)
    invoicing.run()  # a rerun, after the first run's tokens expired: nothing is posted twice
    assert len(sim.posted) == posted
    mode = os.environ["KOPPEL_AFAS_AUTH"]
    if mode == "token":
        return
    secrets = [
        world_sandbox.afas_client_secret,
        *[line for line in world_sandbox.afas_private_key.splitlines() if "-----" not in line],
        *assertions,
        *sim.oauth.tokens,
    ]
    assert len(sim.oauth.tokens) >= 1 and (len(assertions) >= 1 or mode == "client_secret")
    places = {
        "logs": caplog.text + flow_run_logs(),
        "artifacts": every_artifact(),
        "state database": (tmp_path / "state.db").read_bytes().decode("utf-8", errors="replace"),
    }
    assert "oauth/token" in places["logs"]  # the DEBUG wire log of the token requests was captured
    leaked = {where: [s[:10] for s in secrets if s in text] for where, text in places.items()}
    assert leaked == {"logs": [], "artifacts": [], "state database": []}


def flow_run_logs() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import LogSort

    with get_client(sync_client=True) as client:
        logs = client.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC)
    return "\n".join(log.message for log in logs)


def every_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(limit=200, sort=ArtifactSort.CREATED_DESC)
    return "\n".join(str(a.data) + str(a.description) for a in artifacts)


@pytest.mark.parametrize("world_sandbox", params(company.small_world), indirect=True)
def test_create_missing_debtors(prefect_harness, world_sandbox, enabled_config) -> None:  # noqa: F811
    company.test_missing_debtor_created_once_across_reruns_and_linked(
        prefect_harness, world_sandbox, enabled_config
    )


@pytest.mark.parametrize("world_sandbox", params(company.small_world), indirect=True)
def test_import_debtors(prefect_harness, world_sandbox) -> None:
    company.test_import_debtors_records_what_changed_and_when(prefect_harness, world_sandbox)


@pytest.mark.parametrize("world_sandbox", params(hr.small_world), indirect=True)
def test_hr_sync(prefect_harness, world_sandbox) -> None:
    hr.test_first_run_sends_everything_in_order_second_nothing_and_a_closed_absence_follows(
        prefect_harness, world_sandbox
    )


@pytest.mark.parametrize("world_sandbox", params(hr.small_world), indirect=True)
def test_absence_to_afas(prefect_harness, world_sandbox, tmp_path) -> None:
    hr.test_absence_registered_in_oh_appears_once_in_afas_also_after_a_rerun(
        prefect_harness, world_sandbox, tmp_path
    )


REFUSED = {
    "wrong secret": ("client_secret", "KOPPEL_AFAS_CLIENT_SECRET"),
    "expired secret": ("client_secret", "add a new secret"),
    "unknown key": ("private_key_jwt", "KOPPEL_AFAS_PRIVATE_KEY"),
}


@pytest.mark.parametrize(
    "world_sandbox",
    [pytest.param((invoice_support.small_world, mode), id=case) for case, (mode, _) in REFUSED.items()],
    indirect=True,
)
def test_refused_oauth_credentials_fail_the_run_in_one_line_and_post_nothing(
    prefect_harness, world_sandbox, monkeypatch, request, tmp_path
) -> None:
    from koppel.keygen import generate
    from store.runs import run_history

    case = request.node.callspec.id
    sim = world_sandbox.apps["afas"].state.sim
    wrong = {"KOPPEL_AFAS_CLIENT_SECRET": "wrong-client-secret-1"}
    if case == "expired secret":
        sim.options.secret_expired = True
        wrong = {}
    if case == "unknown key":
        wrong = {"KOPPEL_AFAS_PRIVATE_KEY": generate("not-uploaded", kind="ec").private_key_pem}
    for key, value in wrong.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(PreflightFailed) as caught:  # the preflight's AFAS call, before any TOPdesk read
        invoicing.run()
    text = str(caught.value)
    assert "\n" not in text and text.startswith("AFAS refused") and REFUSED[case][1] in text, text
    history = run_history(invoicing.engine(), "invoice-hours")
    assert history.empty or set(history["status"]) == {"failed"}  # never recorded as a billing run
    assert sim.documents("Koppel_DirectInvoices") == [] and sim.posted == []
    database = (tmp_path / "state.db").read_bytes().decode("utf-8", errors="replace")
    for secret in [world_sandbox.afas_client_secret, *wrong.values()]:
        for line in secret.splitlines():
            if "-----" not in line:
                assert line not in text and line not in database
    sim.options.secret_expired = False
