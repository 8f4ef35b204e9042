"""Settings: one model per system, env vars with KOPPEL_ prefix, one clear line per wrong setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from connectors.afas.settings import AfasSettings
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.settings import TopdeskSettings
from koppel.settings import SettingsError, load
from store.settings import StoreSettings

TOKEN = "<token><version>1</version><data>" + "ab" * 32 + "</data></token>"


@pytest.fixture
def afas_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("KOPPEL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_NUMBER", "O12345AA")
    monkeypatch.setenv("KOPPEL_AFAS_TOKEN", TOKEN)


@pytest.mark.parametrize(
    ("env_type", "url"),
    [
        ("production", "https://12345.rest.afas.online/ProfitRestServices"),
        ("test", "https://12345.resttest.afas.online/ProfitRestServices"),
        ("accept", "https://12345.restaccept.afas.online/ProfitRestServices"),
    ],
)
def test_afas_base_url_per_environment_type(afas_env: None, monkeypatch, env_type: str, url: str) -> None:
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_TYPE", env_type)
    settings = load(AfasSettings)
    assert settings.environment_number == "12345"
    assert settings.rest_base_url == url


def test_wrong_environment_type_names_the_setting(afas_env: None, monkeypatch) -> None:
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_TYPE", "prod-ish")
    with pytest.raises(SettingsError) as caught:
        load(AfasSettings)
    message = str(caught.value)
    assert "KOPPEL_AFAS_ENVIRONMENT_TYPE" in message
    assert "prod-ish" in message
    assert "\n" not in message


def test_missing_token_is_named_and_secret_never_echoed(afas_env: None, monkeypatch) -> None:
    monkeypatch.delenv("KOPPEL_AFAS_TOKEN")
    with pytest.raises(SettingsError, match="KOPPEL_AFAS_TOKEN is required but not set"):
        load(AfasSettings)
    monkeypatch.setenv("KOPPEL_AFAS_TOKEN", TOKEN)
    monkeypatch.setenv("KOPPEL_AFAS_MAX_CONCURRENCY", "9")
    with pytest.raises(SettingsError) as caught:
        load(AfasSettings)
    assert "KOPPEL_AFAS_MAX_CONCURRENCY" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(load(AfasSettings, max_concurrency=5))


def test_secret_source_fills_missing_secrets_only(afas_env: None, monkeypatch) -> None:
    monkeypatch.delenv("KOPPEL_AFAS_TOKEN")
    asked: list[str] = []

    def source(name: str) -> str | None:
        asked.append(name)
        return "from-block"

    settings = load(AfasSettings, secrets=source)
    assert settings.token.get_secret_value() == "from-block"
    assert asked == ["KOPPEL_AFAS_TOKEN"]
    monkeypatch.setenv("KOPPEL_AFAS_TOKEN", TOKEN)
    asked.clear()
    assert load(AfasSettings, secrets=source).token.get_secret_value() == TOKEN
    assert asked == []


def test_bad_environment_number(afas_env: None, monkeypatch) -> None:
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_NUMBER", "abc")
    with pytest.raises(SettingsError, match="KOPPEL_AFAS_ENVIRONMENT_NUMBER must be the environment number"):
        load(AfasSettings)


def test_topdesk_and_oh_settings(monkeypatch) -> None:
    monkeypatch.setenv("KOPPEL_TOPDESK_BASE_URL", "https://acme.topdesk.net/")
    monkeypatch.setenv("KOPPEL_TOPDESK_LOGIN", "api")
    monkeypatch.setenv("KOPPEL_TOPDESK_APPLICATION_PASSWORD", "s3cret-app-pw")
    settings = load(TopdeskSettings)
    assert settings.root == "https://acme.topdesk.net"
    assert "s3cret-app-pw" not in repr(settings)
    monkeypatch.setenv("KOPPEL_TOPDESK_BASE_URL", "not a url")
    with pytest.raises(SettingsError, match="KOPPEL_TOPDESK_BASE_URL"):
        load(TopdeskSettings)
    monkeypatch.delenv("KOPPEL_OH_URL", raising=False)
    with pytest.raises(SettingsError, match="KOPPEL_OH_URL is required"):
        load(OccupationalHealthSettings, token="t")


def test_state_db_default_and_validation(monkeypatch) -> None:
    monkeypatch.delenv("KOPPEL_STATE_DB_URL", raising=False)
    assert load(StoreSettings).url == "sqlite:///.koppel/state.db"
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", "mysql://x")
    with pytest.raises(SettingsError, match="KOPPEL_STATE_DB_URL must be a sqlite"):
        load(StoreSettings)


def test_cli_prints_one_line_for_a_wrong_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPEL_")}
    env.update(
        KOPPEL_AFAS_ENVIRONMENT_NUMBER="12345",
        KOPPEL_AFAS_TOKEN=TOKEN,
        KOPPEL_AFAS_ENVIRONMENT_TYPE="prod-ish",
    )
    result = subprocess.run(
        [sys.executable, "-m", "koppel", "settings", "afas"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "KOPPEL_AFAS_ENVIRONMENT_TYPE" in lines[0]
    assert "Traceback" not in result.stderr
    env["KOPPEL_AFAS_ENVIRONMENT_TYPE"] = "accept"
    ok = subprocess.run(
        [sys.executable, "-m", "koppel", "settings", "afas"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "restaccept" not in ok.stdout or TOKEN not in ok.stdout
    assert TOKEN not in ok.stdout


def test_readme_lists_every_setting() -> None:
    from pathlib import Path

    from koppel.notifications import NotifySettings
    from koppel.settings import env_name
    from tasks.invoice_hours.load import LoadSettings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    classes = [AfasSettings, TopdeskSettings, OccupationalHealthSettings, StoreSettings, NotifySettings]
    classes.append(LoadSettings)
    missing = [env_name(c, f) for c in classes for f in c.model_fields if f"`{env_name(c, f)}`" not in readme]
    assert missing == []
