"""manage.py rotate_encryption_key: a new primary key, every stored API key re-encrypted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_registry import crypto, key_management


class Command(BaseCommand):
    help = (
        "Rotate the API-key encryption key. By default: put a new key (generated, or --new-key) "
        "first in the key file, keep the old keys for decryption, and re-encrypt every stored "
        "API key with the new one in one transaction. With keys from PARLEY_ENCRYPTION_KEYS, "
        "put the new key first in the variable, restart, and run with --reencrypt-only. "
        "--retire-old-keys removes the old keys once nothing needs them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--new-key",
            metavar="KEY",
            help=(
                "Use this Fernet key instead of generating one "
                "(write --new-key=KEY: keys may start with -)."
            ),
        )
        group.add_argument(
            "--reencrypt-only",
            action="store_true",
            help="Do not add a key; re-encrypt everything with the current first key.",
        )
        group.add_argument(
            "--retire-old-keys",
            action="store_true",
            help="Remove every key but the first, after checking nothing still needs them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = crypto.key_source()
        try:
            crypto.validate_keys()
            if options["retire_old_keys"]:
                self._retire()
                return
            if not options["reencrypt_only"]:
                if not source.managed:
                    raise CommandError(
                        f"The keys come from {source.description}, which Parley does not "
                        "rewrite. Put a new key first there (for example "
                        f"{crypto.generate_key()}), restart Parley, then run "
                        "rotate_encryption_key --reencrypt-only."
                    )
                crypto.add_primary_key(options["new_key"])
                self.stdout.write(f"Added a new primary key to {source.description}.")
        except crypto.EncryptionKeyError as error:
            raise CommandError(str(error)) from error
        report = key_management.reencrypt_all_secrets()
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {report.reencrypted} stored API key(s).")
        )
        if report.unreadable:
            self.stdout.write(
                self.style.WARNING(
                    f"{report.unreadable} stored API key(s) could not be decrypted with any "
                    "current key and were left as they are; re-enter them in Parley."
                )
            )
        self.stdout.write(
            "The old keys still decrypt. Once every Parley process runs with the new key, "
            "remove them with: manage.py rotate_encryption_key --retire-old-keys"
        )

    def _retire(self) -> None:
        remaining = key_management.secrets_not_on_primary_key()
        if remaining:
            raise CommandError(
                f"{remaining} stored secret(s) still need an old key: run "
                "rotate_encryption_key --reencrypt-only first."
            )
        removed = crypto.retire_old_keys()
        self.stdout.write(self.style.SUCCESS(f"Removed {removed} old key(s); one key remains."))
