"""API keys are encrypted at rest with their own keys, rotate safely, and fail loudly."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from accounts.models import AuditAction, AuditEvent
from config.models import SystemSetting
from models_registry import crypto, key_management
from models_registry.models import ApiKeyUnreadable, KeyStatus, ModelConfig

SECRET = "sk-planted-0123456789abcdefghij9f2c"


def make_model(**fields) -> ModelConfig:
    model = ModelConfig(
        name=fields.pop("name", "GPT"), api_url="https://api.example.com/v1", model="gpt", **fields
    )
    model.set_api_key(SECRET)
    model.save()
    return model


def key_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_round_trip_of_any_text(fresh_keyring):
    for text in (SECRET, "密钥-🔑-ключ", "x" * 5000):
        token = crypto.encrypt(text)
        assert text not in token
        assert crypto.decrypt(token) == text


def test_the_generated_key_file_is_private(fresh_keyring):
    assert stat.S_IMODE(fresh_keyring.stat().st_mode) == 0o600
    assert len(key_lines(fresh_keyring)) == 1


@pytest.mark.django_db
def test_the_suite_database_got_its_key_file_and_canary_at_migrate(settings):
    assert (Path(settings.DATA_DIR) / crypto.KEY_FILE_NAME).exists()
    canary = SystemSetting.objects.get().encryption_canary
    assert crypto.decrypt(canary) == key_management.CANARY_PLAINTEXT


def test_keys_are_not_derived_from_the_secret_key(fresh_keyring, settings):
    model = make_model()
    settings.SECRET_KEY = "a-completely-different-secret-key-" + "z" * 30
    model.refresh_from_db()
    assert model.get_api_key() == SECRET


def test_keys_from_the_environment_variable_and_from_a_file(settings, tmp_path, db):
    first, second = crypto.generate_key(), crypto.generate_key()
    settings.PARLEY_ENCRYPTION_KEYS = f"{first},{second}"
    token = crypto.encrypt("hello")
    settings.PARLEY_ENCRYPTION_KEYS = second
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(token)
    secret_file = tmp_path / "docker-secret"
    secret_file.write_text(f"{second}\n{first}\n")
    settings.PARLEY_ENCRYPTION_KEYS = ""
    settings.PARLEY_ENCRYPTION_KEYS_FILE = str(secret_file)
    assert crypto.decrypt(token) == "hello"
    assert crypto.key_source().managed is False


def test_a_malformed_key_is_refused(settings):
    settings.PARLEY_ENCRYPTION_KEYS = "not-a-fernet-key"
    with pytest.raises(crypto.EncryptionKeyError, match="not a Fernet key"):
        crypto.validate_keys()


def test_the_column_holds_only_ciphertext(fresh_keyring):
    model = make_model()
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, api_key_hint FROM models_registry_modelconfig")
        stored, hint = cursor.fetchone()
    assert SECRET not in stored
    assert crypto.is_token(stored)
    assert hint == "sk-…9f2c"
    assert model.api_key_mask == "sk-…9f2c"


@pytest.mark.django_db(transaction=True)
def test_the_database_and_wal_files_never_hold_the_key(settings):
    if connection.vendor != "sqlite":
        pytest.skip("file bytes are SQLite's")
    make_model(name="File-scan-marker")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA database_list")
        db_path = Path(cursor.fetchone()[2])
    blobs = b"".join(
        path.read_bytes() for path in (db_path, Path(f"{db_path}-wal")) if path.exists()
    )
    assert b"File-scan-marker" in blobs  # the row really is in the bytes we scan
    assert SECRET.encode() not in blobs
    assert SECRET[3:20].encode() not in blobs


def test_rotation_keeps_old_ciphertexts_readable_then_retires_the_old_key(fresh_keyring):
    models = [make_model(name=f"M{n}") for n in range(3)]
    old_tokens = [m.api_key for m in models]
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 3 stored API key(s)." in out.getvalue()
    assert len(key_lines(fresh_keyring)) == 2
    for token in old_tokens:  # e.g. a backup taken before the rotation
        assert crypto.decrypt(token) == SECRET
    for model in models:
        model.refresh_from_db()
        assert model.api_key not in old_tokens
        assert crypto.decrypts_with_primary(model.api_key)
    assert AuditEvent.objects.get(action=AuditAction.KEY_ROTATION).detail == {
        "reencrypted": 3,
        "unreadable": 0,
    }

    call_command("rotate_encryption_key", "--retire-old-keys", stdout=io.StringIO())
    assert len(key_lines(fresh_keyring)) == 1
    for model in models:
        model.refresh_from_db()
        assert model.get_api_key() == SECRET
    # Opened (and remembered) before, but the key that opened them is gone now.
    for token in old_tokens:
        with pytest.raises(crypto.DecryptionFailed):
            crypto.decrypt(token)
    assert key_management.check_encryption_keys(None) == []


def test_rotation_with_a_given_key(fresh_keyring):
    make_model()
    new_key = crypto.generate_key()
    call_command("rotate_encryption_key", f"--new-key={new_key}", stdout=io.StringIO())
    assert key_lines(fresh_keyring)[0] == new_key


def test_old_keys_cannot_be_retired_while_something_needs_them(fresh_keyring):
    model = make_model()
    crypto.add_primary_key()  # a new key, but nothing re-encrypted yet
    with pytest.raises(CommandError, match="still need an old key"):
        call_command("rotate_encryption_key", "--retire-old-keys", stdout=io.StringIO())
    assert len(key_lines(fresh_keyring)) == 2
    model.refresh_from_db()
    assert model.get_api_key() == SECRET


def test_rotation_with_keys_from_the_environment(settings, db):
    old = crypto.generate_key()
    settings.PARLEY_ENCRYPTION_KEYS = old
    model = make_model()
    with pytest.raises(CommandError, match="Put a new key first there"):
        call_command("rotate_encryption_key", stdout=io.StringIO())
    new = crypto.generate_key()
    settings.PARLEY_ENCRYPTION_KEYS = f"{new},{old}"
    out = io.StringIO()
    call_command("rotate_encryption_key", "--reencrypt-only", stdout=out)
    assert "Re-encrypted 1 stored API key(s)." in out.getvalue()
    settings.PARLEY_ENCRYPTION_KEYS = new
    model.refresh_from_db()
    assert model.get_api_key() == SECRET


def test_a_wrong_key_makes_that_model_ask_for_the_key_again(fresh_keyring, settings):
    model = make_model()
    other = make_model(name="Keyless")
    other.set_api_key("")
    other.save()
    settings.PARLEY_ENCRYPTION_KEYS = crypto.generate_key()
    model.refresh_from_db()
    assert model.key_status == KeyStatus.UNREADABLE
    with pytest.raises(ApiKeyUnreadable, match="Re-enter the API key"):
        model.get_api_key()
    other.refresh_from_db()
    assert other.key_status == KeyStatus.NONE


def test_the_system_check_fails_loudly_on_a_wrong_key(fresh_keyring, settings):
    assert key_management.check_encryption_keys(None) == []
    settings.PARLEY_ENCRYPTION_KEYS = crypto.generate_key()
    errors = key_management.check_encryption_keys(None)
    assert [e.id for e in errors] == ["parley.E002"]


def test_the_system_check_fails_loudly_on_a_missing_key_file(fresh_keyring):
    fresh_keyring.unlink()
    errors = key_management.check_encryption_keys(None)
    assert [e.id for e in errors] == ["parley.E001"]
    assert "missing" in errors[0].msg
    # And nothing quietly generates a new key that could not open the old data.
    key_management.ensure_encryption_ready()
    assert not fresh_keyring.exists()


@override_settings(PARLEY_ENCRYPTION_KEYS="garbage")
def test_the_system_check_reports_a_malformed_variable(db):
    errors = key_management.check_encryption_keys(None)
    assert [e.id for e in errors] == ["parley.E001"]
