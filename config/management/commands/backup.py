"""manage.py backup: an online, consistent backup of the database, full or incremental."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.audit import audit_record
from accounts.models import AuditAction
from config.backups.chain import backup_root
from config.backups.manifest import FULL, INCREMENTAL, BackupError
from config.backups.postgres import backup_postgres
from config.backups.snapshot import BackupResult, backup_sqlite, has_tables
from config.backups.summary import format_size
from config.i18n import TranslatedHelpCommand


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(_("must be 1 or more"))
    return number


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Back up the database while Parley runs. SQLite: a consistent snapshot through the "
        "sqlite3 backup API (never a copy of the live file); --full writes all of it, "
        "--incremental only the pages changed since the previous backup of the newest chain "
        "(default: incremental when a chain exists, else full). PostgreSQL: a full pg_dump "
        "(custom format); incremental backups are the database server's job. Each backup "
        "gets a manifest with SHA-256 hashes. --keep N then keeps the newest N chains (a "
        "full backup and its incrementals) and deletes older chains whole."
    )
    # A backup must work when the encryption keys are lost or migrations are pending.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument(
            "--full",
            dest="kind",
            action="store_const",
            const=FULL,
            help=gettext_lazy("Start a new chain."),
        )
        kind.add_argument(
            "--incremental",
            dest="kind",
            action="store_const",
            const=INCREMENTAL,
            help=gettext_lazy(
                "Only the pages changed since the previous backup (a full one if no chain)."
            ),
        )
        parser.add_argument(
            "--dest", type=Path, help=gettext_lazy("Backup folder (default: DATA_DIR/backups).")
        )
        parser.add_argument(
            "--keep",
            type=positive_int,
            metavar="N",
            help=gettext_lazy("Afterwards keep the newest N chains and delete older ones."),
        )
        parser.add_argument(
            "--skip-empty",
            action="store_true",
            help=gettext_lazy(
                "Succeed quietly when there is no migrated database yet (the entrypoint)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        report = self.stdout.write if verbosity >= 1 else None
        dest = backup_root(options["dest"])
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            if connection.vendor == "sqlite":
                db_path = Path(connection.settings_dict["NAME"])
                if options["skip_empty"] and not has_tables(db_path):
                    if report:
                        report(
                            _("No migrated database at %(path)s yet: nothing to back up.")
                            % {"path": db_path}
                        )
                    return
                result = backup_sqlite(
                    db_path=db_path,
                    dest=dest,
                    kind=options["kind"],
                    keep=options["keep"],
                    report=report,
                )
            elif connection.vendor == "postgresql":
                tables = connection.introspection.table_names()
                if options["skip_empty"] and "django_migrations" not in tables:
                    if report:
                        report(_("The PostgreSQL database has no tables yet: nothing to back up."))
                    return
                result = backup_postgres(
                    connection=connection,
                    dest=dest,
                    kind=options["kind"],
                    keep=options["keep"],
                    report=report,
                )
            else:
                raise CommandError(
                    _("Backups support SQLite and PostgreSQL, not %(vendor)s.")
                    % {"vendor": connection.vendor}
                )
        except BackupError as error:
            raise CommandError(str(error)) from error
        except OSError as error:  # disk full, permissions: the message names the file
            raise CommandError(_("Backup failed: %(error)s") % {"error": error}) from error
        self._audit(result)
        if report:
            self._summarize(result, report)

    def _audit(self, result: BackupResult) -> None:
        manifest = result.manifest
        try:
            audit_record(
                AuditAction.BACKUP,
                target=manifest.name,
                detail={"kind": manifest.kind, "name": manifest.name, "bytes": manifest.size_bytes},
            )
        except DatabaseError as error:  # e.g. the audit table awaits a pending migration
            self.stderr.write(
                _("Warning: the backup was not recorded in the audit log (%(error)s).")
                % {"error": error}
            )

    def _summarize(self, result: BackupResult, report: Any) -> None:
        manifest = result.manifest
        if result.note:
            report(_("Note: %(note)s") % {"note": result.note})
        if result.pruned:
            report(
                _("Deleted %(count)d old chain(s): %(names)s")
                % {"count": len(result.pruned), "names": ", ".join(result.pruned)}
            )
        done = {
            "kind": manifest.kind,
            "name": manifest.name,
            "size": format_size(manifest.size_bytes),
            "changed": result.pages_changed,
            "total": result.pages_total,
            "seconds": f"{manifest.duration_seconds:.1f}",
            "folder": result.chain_dir,
        }
        if result.pages_total is not None:
            line = _(
                "Backup %(kind)s %(name)s: %(size)s, %(changed)s/%(total)s pages changed, "
                "%(seconds)s s (in %(folder)s)"
            )
        else:
            line = _("Backup %(kind)s %(name)s: %(size)s (pg_dump), %(seconds)s s (in %(folder)s)")
        report(self.style.SUCCESS(line % done))
