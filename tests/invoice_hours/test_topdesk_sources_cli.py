"""``koppel topdesk sources`` against the sandbox: the tenant's entity sets and the mapping check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from connectors.topdesk.catalog import parse_metadata
from koppel.cli import app
from tests.fixtures.worlds import SMALL


@pytest.fixture(scope="module")
def sandbox(sandboxes):
    """The session's small-world sandbox, reset once for this module (its commands only read)."""
    return sandboxes(SMALL)


def invoke(sandbox, monkeypatch):
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    return CliRunner().invoke(app, ["topdesk", "sources"])


def test_sources_lists_every_entity_set_with_its_properties(sandbox, monkeypatch):
    result = invoke(sandbox, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "ProblemTimeRegistrations: Id, TicketId" in result.output
    assert "TimeSpentMinutes" in result.output
    assert "MISSING" not in result.output


def test_sources_names_a_configured_set_the_tenant_lacks(sandbox, monkeypatch):
    sim = sandbox.apps["topdesk"].state.sim
    sim.options.missing_entity_sets = ("ChangeActivities",)
    try:
        result = invoke(sandbox, monkeypatch)
    finally:
        sim.options.missing_entity_sets = ()
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "ChangeActivities " in line + " ")
    assert "change_activity" in line and "MISSING" in line
    assert "ChangeActivities:" not in result.output  # not offered by the tenant any more


def test_metadata_reader_takes_prefixed_elements_and_ignores_everything_else():
    xml = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><edmx:Edmx><edmx:DataServices><Schema>'
        '<EntityType Name="T"><Key><PropertyRef Name="Id"/></Key><Property Name="Id" Type="Edm.Guid"/>'
        '<Property Name="Minutes" Type="Edm.Int64"/></EntityType>'
        '<EntityContainer><EntitySet Name="Things" EntityType="NS.T"/>'
        '<EntitySet Name="Other" EntityType="NS.U"/>'
        "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
    sets = parse_metadata(xml)
    assert [(s.name, dict(s.properties)) for s in sets] == [
        ("Things", {"Id": "Edm.Guid", "Minutes": "Edm.Int64"}),
        ("Other", {}),
    ]
