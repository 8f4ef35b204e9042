"""Typed credential blocks, where each setting comes from, `koppel settings` masking, `koppel afas keygen`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from typer.testing import CliRunner

from connectors.afas.credentials import PrivateKeyJwt
from connectors.afas.settings import AfasSettings
from connectors.topdesk.settings import TopdeskSettings
from koppel.cli import app
from koppel.settings import SettingsError, load, resolve
from store.settings import StoreSettings

PG_URL = "postgresql+psycopg://koppel:Pg-pass-w0rd!@db.example:5432/koppel"
CLIENT_SECRET = "cs-0123456789-secret"


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("KOPPEL_"):
            monkeypatch.delenv(key)


def cli_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOPPEL_", "PREFECT_API_URL"))}
    env.update(values)
    return env


def koppel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "koppel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_block_values_fill_what_the_environment_leaves_and_sources_are_named(clean_env, monkeypatch):
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_NUMBER", "12345")
    monkeypatch.setenv("KOPPEL_AFAS_CLIENT_ID", "from-env")
    block = {"client_id": "from-block", "client_secret": CLIENT_SECRET, "token": None}
    asked: list[str] = []

    def secrets(name: str) -> str | None:
        asked.append(name)
        return "from-secret-block"

    resolved = resolve(
        AfasSettings, secrets=secrets, block=lambda cls: ("block koppel-afas", block), auth="client_secret"
    )
    assert resolved.settings.client_id == "from-env"
    assert resolved.settings.client_secret.get_secret_value() == CLIENT_SECRET
    assert resolved.sources["client_id"] == "env"
    assert resolved.sources["client_secret"] == "block koppel-afas"
    assert resolved.sources["environment_type"] == "default" and resolved.sources["auth"] == "given"
    assert asked == []  # nothing missing, so no Secret block is asked for
    # A secret neither env nor block holds comes from the Secret block named after its variable.
    fallback = resolve(AfasSettings, secrets=secrets, block=lambda cls: None)
    assert fallback.settings.token.get_secret_value() == "from-secret-block"
    assert fallback.sources["token"] == "secret block koppel-afas-token"
    assert asked == ["KOPPEL_AFAS_TOKEN"]


@pytest.mark.prefect
def test_typed_blocks_register_save_and_feed_settings(prefect_harness, clean_env, monkeypatch):
    from prefect.blocks.system import Secret

    from koppel.blocks import AfasCredentials, OccupationalHealthCredentials, TopdeskCredentials
    from tasks.secrets import load_settings, resolve_settings

    for block_type in (AfasCredentials, TopdeskCredentials, OccupationalHealthCredentials):
        block_type.register_type_and_schema()
    AfasCredentials(client_id="block-client", client_secret=CLIENT_SECRET).save("koppel-afas", overwrite=True)
    Secret(value="secret-block-app-password").save("koppel-topdesk-application-password", overwrite=True)
    monkeypatch.setenv("KOPPEL_AFAS_ENVIRONMENT_NUMBER", "12345")
    monkeypatch.setenv("KOPPEL_AFAS_AUTH", "client_secret")
    resolved = resolve_settings(AfasSettings)
    assert resolved.settings.client_secret.get_secret_value() == CLIENT_SECRET
    assert resolved.sources["client_secret"] == resolved.sources["client_id"] == "block koppel-afas"
    monkeypatch.setenv("KOPPEL_AFAS_CLIENT_SECRET", "env-wins-123")
    assert load_settings(AfasSettings).client_secret.get_secret_value() == "env-wins-123"
    monkeypatch.setenv("KOPPEL_TOPDESK_BASE_URL", "https://acme.topdesk.net")
    monkeypatch.setenv("KOPPEL_TOPDESK_LOGIN", "api")
    topdesk = resolve_settings(TopdeskSettings)  # no typed block: the Secret block fallback still works
    assert topdesk.settings.application_password.get_secret_value() == "secret-block-app-password"
    assert topdesk.sources["application_password"] == "secret block koppel-topdesk-application-password"
    assert CLIENT_SECRET not in repr(AfasCredentials.load("koppel-afas"))


@pytest.mark.prefect
def test_prefect_registers_the_block_types_and_koppel_settings_shows_block_sources(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    from koppel.blocks import AfasCredentials

    api = str(PREFECT_API_URL.value())
    env = cli_env(PREFECT_API_URL=api)
    registered = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "prefect"),
            "block",
            "register",
            "-m",
            "koppel.blocks",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert "Successfully registered 3 blocks" in registered.stdout
    AfasCredentials(client_id="block-client", client_secret=CLIENT_SECRET).save("koppel-afas", overwrite=True)
    env.update(KOPPEL_AFAS_ENVIRONMENT_NUMBER="12345", KOPPEL_AFAS_AUTH="client_secret")
    result = koppel(env, "settings", "afas")
    assert result.returncode == 0, result.stderr
    assert "KOPPEL_AFAS_CLIENT_SECRET = ***  (block koppel-afas)" in result.stdout
    assert "KOPPEL_AFAS_CLIENT_ID = 'block-client'  (block koppel-afas)" in result.stdout
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_state_db_password_is_a_secret(clean_env, monkeypatch):
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", PG_URL)
    settings = load(StoreSettings)
    assert settings.url == PG_URL
    assert "Pg-pass-w0rd!" not in repr(settings) and "Pg-pass-w0rd!" not in str(settings)
    assert settings.masked_url == "postgresql+psycopg://koppel:***@db.example:5432/koppel"
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", "mysql://koppel:Pg-pass-w0rd!@db/koppel")
    with pytest.raises(SettingsError) as caught:
        load(StoreSettings)
    assert "KOPPEL_STATE_DB_URL" in str(caught.value) and "Pg-pass-w0rd!" not in str(caught.value)


@pytest.mark.parametrize("auth", ["client_secret", "private_key_jwt"])
def test_koppel_settings_names_sources_and_masks_every_secret(auth, tmp_path):
    from koppel.keygen import generate

    pem = generate("cli", kind="ec").private_key_pem
    env = cli_env(
        KOPPEL_AFAS_ENVIRONMENT_NUMBER="12345",
        KOPPEL_AFAS_AUTH=auth,
        KOPPEL_AFAS_CLIENT_ID="koppel-client",
        KOPPEL_AFAS_CLIENT_SECRET=CLIENT_SECRET,
        KOPPEL_AFAS_PRIVATE_KEY=pem,
        KOPPEL_AFAS_TOKEN="<token><version>1</version><data>" + "ab" * 32 + "</data></token>",
        KOPPEL_STATE_DB_URL=PG_URL,
        KOPPEL_TOPDESK_BASE_URL="https://acme.topdesk.net",
        KOPPEL_TOPDESK_LOGIN="api",
        KOPPEL_TOPDESK_APPLICATION_PASSWORD="td-app-password-1",
        KOPPEL_OH_URL="https://oh.example",
        KOPPEL_OH_TOKEN="oh-token-value-1",
    )
    result = koppel(env, "settings")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for secret in (CLIENT_SECRET, "ab" * 32, "Pg-pass-w0rd!", "td-app-password-1", "oh-token-value-1"):
        assert secret not in out
    assert all(line not in out for line in pem.splitlines() if "-----" not in line)
    assert f"KOPPEL_AFAS_AUTH = '{auth}'  (env)" in out
    assert "KOPPEL_AFAS_CLIENT_SECRET = ***  (env)" in out
    assert "KOPPEL_AFAS_KEY_ID = (not set)  (default)" in out
    assert "KOPPEL_STATE_DB_URL = postgresql+psycopg://koppel:***@db.example:5432/koppel  (env)" in out


def test_koppel_settings_names_the_missing_oauth_credential_in_one_line():
    env = cli_env(KOPPEL_AFAS_ENVIRONMENT_NUMBER="12345", KOPPEL_AFAS_AUTH="private_key_jwt")
    result = koppel(env, "settings", "afas")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "afas: Invalid settings: KOPPEL_AFAS_CLIENT_ID is required but not set "
        "(KOPPEL_AFAS_AUTH=private_key_jwt); "
        "KOPPEL_AFAS_PRIVATE_KEY is required but not set (KOPPEL_AFAS_AUTH=private_key_jwt)"
    )


@pytest.mark.parametrize(("kind", "algorithm"), [("rsa", "RS256"), ("ec", "ES256")])
def test_keygen_writes_a_private_key_and_a_certificate_that_verify_together(tmp_path, kind, algorithm):
    result = CliRunner().invoke(app, ["afas", "keygen", "T12345AA", "--out", str(tmp_path), "--kind", kind])
    assert result.exit_code == 0, result.output
    key_file, cert_file = tmp_path / "T12345AA-private-key.pem", tmp_path / "T12345AA-certificate.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_text()
    assert "PRIVATE KEY" in pem and not any(line in result.output for line in pem.splitlines()[1:-1])
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 — AFAS's kid
    assert thumbprint in result.output
    signer = PrivateKeyJwt("client", pem, key_id=thumbprint)
    assert signer.algorithm == algorithm
    import jwt

    claims = jwt.decode(
        signer.assertion("https://x/oauth/token"),
        certificate.public_key(),
        [algorithm],
        audience="https://x/oauth/token",
    )
    assert claims["iss"] == "client"
    again = CliRunner().invoke(app, ["afas", "keygen", "T12345AA", "--out", str(tmp_path)])
    assert again.exit_code == 1 and "--force" in again.output and key_file.read_text() == pem
