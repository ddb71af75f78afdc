"""Settings: read from the environment, validated with messages that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import ApiSettings
from cli.config import env_example
from collector.settings import CollectorSettings
from common.settings import SettingsError, load
from storage.settings import StorageSettings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_design() -> None:
    collector = load(CollectorSettings, {})
    storage = load(StorageSettings, {})
    assert (collector.collector_otlp_grpc_port, collector.collector_otlp_http_port, collector.collector_metrics_port) == (4317, 4318, 9091)
    assert storage.storage_metrics_port == 9092
    assert (storage.batch_size, storage.flush_interval) == (5000, 1.0)
    assert storage.redis_url == "redis://127.0.0.1:6379/0"
    assert storage.database_url == "postgresql://postgres@127.0.0.1:5432/llm_observatory"


def test_values_are_parsed_by_type() -> None:
    settings = load(StorageSettings, {"BATCH_SIZE": " 250 ", "FLUSH_INTERVAL": "0.5", "RUN_MIGRATIONS": "yes"})
    assert (settings.batch_size, settings.flush_interval, settings.run_migrations) == (250, 0.5, True)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BATCH_SIZE", "abc", "BATCH_SIZE must be an integer, got 'abc'"),
        ("BATCH_SIZE", "0", "BATCH_SIZE must be a positive number, got 0"),
        ("BATCH_SIZE", "1000000", "BATCH_SIZE must be at most 100000"),
        ("FLUSH_INTERVAL", "soon", "FLUSH_INTERVAL must be a number, got 'soon'"),
        ("RUN_MIGRATIONS", "maybe", "RUN_MIGRATIONS must be true or false, got 'maybe'"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, pretty, got 'xml'"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load(StorageSettings, {variable: value})
    assert message in str(error.value)


def test_file_variant_reads_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text("redis://:s3cret@redis:6379/0\n")
    assert load(StorageSettings, {"REDIS_URL_FILE": str(secret)}).redis_url == "redis://:s3cret@redis:6379/0"
    with pytest.raises(SettingsError, match="REDIS_URL_FILE='/nope' cannot be read"):
        load(StorageSettings, {"REDIS_URL_FILE": "/nope"})


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("BATCH_SIZE=77\nFLUSH_INTERVAL=3\n")
    monkeypatch.setenv("OBSERVATORY_ENV_FILE", str(dotenv))
    monkeypatch.setenv("FLUSH_INTERVAL", "2")
    monkeypatch.delenv("BATCH_SIZE", raising=False)
    settings = load(StorageSettings)
    assert (settings.batch_size, settings.flush_interval) == (77, 2.0)


@pytest.fixture
def dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `.env` file the settings read, with none of the variables below in the environment."""
    path = tmp_path / ".env"
    monkeypatch.setenv("OBSERVATORY_ENV_FILE", str(path))
    for name in ("REDIS_URL", "REDIS_URL_FILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    return path


@pytest.mark.parametrize(
    ("in_environment", "in_dotenv"),
    [("value", "value"), ("value", "file"), ("file", "value"), ("file", "file")],
)
def test_environment_beats_dotenv_whatever_the_form(
    in_environment: str, in_dotenv: str, dotenv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Docker secret (REDIS_URL_FILE in the environment) must win over a REDIS_URL left
    # in .env, and the other way round: the process environment is the operator's word.
    wanted, stale = "redis://:from-env@redis:6379/0", "redis://:from-dotenv@127.0.0.1:6379/0"
    if in_dotenv == "value":
        dotenv.write_text(f"REDIS_URL={stale}\n")
    else:
        dotenv.write_text(f"REDIS_URL_FILE={secret_file(tmp_path, 'dotenv_secret', stale)}\n")
    if in_environment == "value":
        monkeypatch.setenv("REDIS_URL", wanted)
    else:
        monkeypatch.setenv("REDIS_URL_FILE", str(secret_file(tmp_path, "env_secret", wanted)))
    assert load(StorageSettings).redis_url == wanted


def test_dotenv_file_variant_is_read_when_the_environment_is_silent(dotenv: Path, tmp_path: Path) -> None:
    dotenv.write_text(f"REDIS_URL_FILE={secret_file(tmp_path, 'secret', 'redis://:s@redis:6379/1')}\n")
    assert load(StorageSettings).redis_url == "redis://:s@redis:6379/1"


def test_within_one_source_the_value_beats_the_file(dotenv: Path, tmp_path: Path) -> None:
    dotenv.write_text(f"REDIS_URL=redis://plain:6379/0\nREDIS_URL_FILE={secret_file(tmp_path, 's', 'redis://file:6379/0')}\n")
    assert load(StorageSettings).redis_url == "redis://plain:6379/0"


def test_an_unreadable_file_in_dotenv_names_the_variable(dotenv: Path) -> None:
    dotenv.write_text("REDIS_URL_FILE=/nonexistent/redis_url\n")
    with pytest.raises(SettingsError, match="REDIS_URL_FILE='/nonexistent/redis_url' cannot be read"):
        load(StorageSettings)


def test_lists_split_on_commas_and_newlines(tmp_path: Path) -> None:
    # API_KEYS_FILE keeps one entry a line; a trailing newline or blank line adds nothing.
    keys = tmp_path / "api_keys"
    keys.write_text("a:traces:" + "0" * 64 + "\n\nb:usage:" + "1" * 64 + ", c:*:" + "2" * 64 + "\n")
    settings = load(ApiSettings, {"API_KEYS_FILE": str(keys)})
    assert [entry.split(":")[0] for entry in settings.api_keys] == ["a", "b", "c"]


def test_env_example_is_generated_from_the_settings() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        ".env.example is stale: run `observatory config env-example > .env.example`"
    )
