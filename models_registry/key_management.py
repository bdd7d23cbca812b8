"""Database-side key management: the canary, re-encryption on rotation, the system check.

`crypto` knows keys and ciphertexts; this module knows where ciphertexts are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.checks import Error, register
from django.db import DatabaseError, transaction

from accounts.audit import audit_record
from accounts.models import AuditAction
from config.models import SINGLETON_PK, SystemSetting
from models_registry import crypto
from models_registry.models import ModelConfig

if TYPE_CHECKING:
    from accounts.models import User

CANARY_PLAINTEXT = "parley-encryption-canary-v1"


def ensure_encryption_ready(**kwargs: Any) -> None:
    """After migrate: on a fresh database create the key file and store the canary.

    Once a canary exists, a missing key file is never silently replaced by a new one:
    the system check reports it instead, because a new key could not open old data.
    """
    if not _canary_column_migrated(kwargs.get("apps")):
        return  # e.g. after `migrate config zero`: there is no settings table to hold it
    setting, _ = SystemSetting.objects.get_or_create(pk=SINGLETON_PK)
    if setting.encryption_canary:
        return
    crypto.create_key_file()
    setting.encryption_canary = crypto.encrypt(CANARY_PLAINTEXT)
    setting.save(update_fields=["encryption_canary"])


def _canary_column_migrated(state_apps: Any) -> bool:
    """Whether the migration state `migrate` just reached has SystemSetting's canary column
    (post_migrate also runs after migrating backwards, when it may not)."""
    if state_apps is None:
        return True
    try:
        model = state_apps.get_model("config", "SystemSetting")
    except LookupError:
        return False
    return any(f.name == "encryption_canary" for f in model._meta.get_fields())


def _stored_canary() -> str | None:
    try:
        return SystemSetting.objects.values_list("encryption_canary", flat=True).first() or None
    except DatabaseError:  # not migrated yet: nothing is encrypted
        return None


@register()
def check_encryption_keys(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Fail every manage.py call (migrate included) when the keys are lost or wrong."""
    canary = _stored_canary()
    try:
        crypto.validate_keys()
    except crypto.EncryptionKeyError as error:
        if canary is None and crypto.key_source().managed:
            return []  # fresh install: migrate generates the key file
        return [
            Error(
                f"API-key encryption keys unusable: {error}",
                hint=(
                    "Restore the key file from your backup or set PARLEY_ENCRYPTION_KEYS to the "
                    "keys in use; see docs/operations.md, 'Encryption keys'."
                ),
                id="parley.E001",
            )
        ]
    if canary is not None:
        try:
            crypto.decrypt(canary)
        except crypto.DecryptionFailed:
            return [
                Error(
                    "The encryption keys in use cannot decrypt the stored canary: every "
                    "stored API key is unreadable with them (keys from "
                    f"{crypto.key_source().description}).",
                    hint="Put the previous key back (first or alongside the new one) and restart.",
                    id="parley.E002",
                )
            ]
    return []


@dataclass(frozen=True)
class ReencryptionReport:
    reencrypted: int
    unreadable: int


def reencrypt_all_secrets(*, actor: User | None = None) -> ReencryptionReport:
    """Re-encrypt every stored API key (and the canary) with the primary key, atomically."""
    reencrypted = unreadable = 0
    with transaction.atomic():
        rows = ModelConfig.objects.select_for_update().exclude(api_key="").only("id", "api_key")
        for row in rows:
            try:
                row.api_key = crypto.reencrypt(row.api_key)
            except crypto.DecryptionFailed:
                unreadable += 1
                continue
            row.save(update_fields=["api_key"])
            reencrypted += 1
        setting, _ = SystemSetting.objects.select_for_update().get_or_create(pk=SINGLETON_PK)
        setting.encryption_canary = crypto.encrypt(CANARY_PLAINTEXT)
        setting.save(update_fields=["encryption_canary"])
        audit_record(
            AuditAction.KEY_ROTATION,
            actor=actor,
            target="API-key encryption",
            detail={"reencrypted": reencrypted, "unreadable": unreadable},
        )
    return ReencryptionReport(reencrypted=reencrypted, unreadable=unreadable)


def secrets_not_on_primary_key() -> int:
    """How many stored ciphertexts still need a non-primary key (0: safe to retire)."""
    tokens = list(ModelConfig.objects.exclude(api_key="").values_list("api_key", flat=True))
    canary = _stored_canary()
    if canary:
        tokens.append(canary)
    return sum(1 for token in tokens if not crypto.decrypts_with_primary(token))
