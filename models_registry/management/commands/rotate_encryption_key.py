"""manage.py rotate_encryption_key: a new primary key, every stored API key re-encrypted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.i18n import TranslatedHelpCommand
from models_registry import crypto, key_management


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
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
            help=gettext_lazy(
                "Use this Fernet key instead of generating one "
                "(write --new-key=KEY: keys may start with -)."
            ),
        )
        group.add_argument(
            "--reencrypt-only",
            action="store_true",
            help=gettext_lazy(
                "Do not add a key; re-encrypt everything with the current first key."
            ),
        )
        group.add_argument(
            "--retire-old-keys",
            action="store_true",
            help=gettext_lazy(
                "Remove every key but the first, after checking nothing still needs them."
            ),
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
                        _(
                            "The keys come from %(source)s, which Parley does not rewrite. Put "
                            "a new key first there (for example %(key)s), restart Parley, then "
                            "run rotate_encryption_key --reencrypt-only."
                        )
                        % {"source": source.description, "key": crypto.generate_key()}
                    )
                crypto.add_primary_key(options["new_key"])
                self.stdout.write(
                    _("Added a new primary key to %(source)s.") % {"source": source.description}
                )
        except crypto.EncryptionKeyError as error:
            raise CommandError(str(error)) from error
        report = key_management.reencrypt_all_secrets()
        self.stdout.write(
            self.style.SUCCESS(
                _("Re-encrypted %(count)d stored API key(s).") % {"count": report.reencrypted}
            )
        )
        if report.unreadable:
            self.stdout.write(
                self.style.WARNING(
                    _(
                        "%(count)d stored API key(s) could not be decrypted with any current key "
                        "and were left as they are; re-enter them in Parley."
                    )
                    % {"count": report.unreadable}
                )
            )
        self.stdout.write(
            _(
                "The old keys still decrypt. Once every Parley process runs with the new key, "
                "remove them with: manage.py rotate_encryption_key --retire-old-keys"
            )
        )

    def _retire(self) -> None:
        remaining = key_management.secrets_not_on_primary_key()
        if remaining:
            raise CommandError(
                _(
                    "%(count)d stored secret(s) still need an old key: run "
                    "rotate_encryption_key --reencrypt-only first."
                )
                % {"count": remaining}
            )
        removed = crypto.retire_old_keys()
        self.stdout.write(
            self.style.SUCCESS(
                _("Removed %(count)d old key(s); one key remains.") % {"count": removed}
            )
        )
