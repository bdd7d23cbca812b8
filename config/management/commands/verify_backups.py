"""manage.py verify_backups: rebuild every chain in a temporary place and check each backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.backups.chain import backup_root
from config.backups.verify import BackupCheck, verify_all
from config.i18n import TranslatedHelpCommand


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Check every backup: each chain is rebuilt in a temporary place, backup after "
        "backup; every file must match the SHA-256 in its manifest, and every rebuilt "
        "database its recorded SHA-256 and PRAGMA integrity_check (pg_dump archives: "
        "SHA-256 and pg_restore --list). Prints ok or BROKEN with the reason for each, "
        "records the result beside each manifest (for the status page), and exits non-zero "
        "if any backup is broken. Nothing live is touched."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dest", type=Path, help=gettext_lazy("Backup folder (default: DATA_DIR/backups).")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dest = backup_root(options["dest"])
        verbosity = options["verbosity"]

        def show(check: BackupCheck) -> None:
            if check.ok and verbosity >= 1:
                self.stdout.write(f"ok      {check.chain}/{check.name}")
            elif not check.ok:
                self.stdout.write(
                    self.style.ERROR(f"BROKEN  {check.chain}/{check.name}: {check.reason}")
                )

        results = verify_all(dest, report=show)
        if not results:
            if verbosity >= 1:
                self.stdout.write(_("No backups in %(path)s.") % {"path": dest})
            return
        broken = [check for check in results if not check.ok]
        chains = len({check.chain for check in results})
        if verbosity >= 1:
            self.stdout.write(
                _("%(count)d backup(s) in %(chains)d chain(s): %(ok)d ok, %(broken)d broken.")
                % {
                    "count": len(results),
                    "chains": chains,
                    "ok": len(results) - len(broken),
                    "broken": len(broken),
                }
            )
        if broken:
            raise CommandError(
                _("%(count)d broken backup(s): %(names)s")
                % {"count": len(broken), "names": ", ".join(check.name for check in broken)}
            )
