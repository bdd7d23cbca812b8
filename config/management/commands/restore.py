"""manage.py restore: rebuild a backup into a new file, prove it sound, then put it in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.audit import audit_record
from accounts.models import AuditAction
from config.backups.chain import backup_root
from config.backups.manifest import BackupError
from config.backups.restore import RestoreResult, migration_gap, restore_sqlite
from config.i18n import TranslatedHelpCommand


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Restore a backup. Rebuilds the chain up to the chosen backup (--at NAME, default "
        "the newest) into a new file, checks its SHA-256 against the manifest, runs PRAGMA "
        "integrity_check and foreign_key_check, and counts the stored API keys that do not "
        "decrypt with the current keys (a warning). Then --to PATH writes it there and "
        "touches nothing else, or --replace moves the live database and its -wal/-shm aside "
        "(*.pre-restore) and puts the restored file in its place. --replace refuses while "
        "another process has the database open (a running server), unless --force."
    )
    # Restoring is what one does when the database or the keys are in a bad state.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "ref",
            metavar="CHAIN_OR_BACKUP",
            help=gettext_lazy(
                "A chain id, a backup name, 'latest', or a path to a chain folder or manifest."
            ),
        )
        parser.add_argument(
            "--dest", type=Path, help=gettext_lazy("Backup folder (default: DATA_DIR/backups).")
        )
        parser.add_argument(
            "--at", metavar="BACKUP", help=gettext_lazy("Restore up to this backup of the chain.")
        )
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument(
            "--to",
            type=Path,
            metavar="PATH",
            help=gettext_lazy("Write the restored database here."),
        )
        where.add_argument(
            "--replace",
            action="store_true",
            help=gettext_lazy("Replace the live database (server stopped)."),
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help=gettext_lazy("--replace even though another process has the database open."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        replace: Path | None = None
        if options["replace"]:
            connection = connections[DEFAULT_DB_ALIAS]
            if connection.vendor != "sqlite":
                raise CommandError(
                    _(
                        "--replace restores SQLite databases and this one is %(vendor)s. "
                        "Restore with --to PATH, then move the data across with "
                        "dumpdata/loaddata (docs/operations.md); restore pg_dump backups with "
                        "pg_restore."
                    )
                    % {"vendor": connection.vendor}
                )
            replace = Path(connection.settings_dict["NAME"]).resolve()
        connections.close_all()  # this process must not hold the file we replace
        try:
            result = restore_sqlite(
                dest=backup_root(options["dest"]),
                ref=options["ref"],
                at=options["at"],
                to=options["to"],
                replace=replace,
                force=options["force"],
            )
        except BackupError as error:
            raise CommandError(
                _("Restore failed, nothing was changed: %(error)s") % {"error": error}
            ) from error
        except OSError as error:  # disk full, permissions: the message names the file
            raise CommandError(_("Restore failed: %(error)s") % {"error": error}) from error
        self._report(result, options["verbosity"])
        if replace is not None:
            connections.close_all()
            self._audit(result)

    def _report(self, result: RestoreResult, verbosity: int) -> None:
        target, check = result.target, result.check
        if verbosity >= 1:
            self.stdout.write(
                _(
                    "Rebuilt %(name)s (chain %(chain)s, %(count)d backup(s)): SHA-256 matches, "
                    "integrity_check ok, foreign_key_check ok."
                )
                % {"name": target.name, "chain": target.chain, "count": result.backups_applied}
            )
        if check.api_key_problem:
            self.stderr.write(
                self.style.WARNING(
                    _("Warning: could not try the %(count)d stored API key(s): %(problem)s")
                    % {"count": check.api_keys, "problem": check.api_key_problem}
                )
            )
        elif check.api_keys_unreadable:
            self.stderr.write(
                self.style.WARNING(
                    _(
                        "Warning: %(unreadable)d of %(count)d stored API key(s) do not decrypt "
                        "with the current encryption keys: those models will ask for the key "
                        "again, unless you restore the matching encryption_keys file."
                    )
                    % {"unreadable": check.api_keys_unreadable, "count": check.api_keys}
                )
            )
        elif verbosity >= 1:
            self.stdout.write(
                _("All %(count)d stored API key(s) decrypt with the current keys.")
                % {"count": check.api_keys}
            )
        pending, unknown = migration_gap(target.migrations)
        if verbosity >= 1 and pending:
            self.stdout.write(
                _(
                    "The backup predates %(count)d migration(s) of this code: the next "
                    "`migrate` (the entrypoint runs it) applies them."
                )
                % {"count": len(pending)}
            )
        if unknown:
            self.stderr.write(
                self.style.WARNING(
                    _(
                        "Warning: the backup has %(count)d migration(s) this code does not know "
                        "(taken by Parley %(version)s): run that version, or newer."
                    )
                    % {"count": len(unknown), "version": target.parley_version}
                )
            )
        if verbosity >= 1:
            if result.moved_aside:
                kept = ", ".join(path.name for path in result.moved_aside)
                self.stdout.write(
                    self.style.SUCCESS(
                        _("Replaced %(path)s; the previous files are kept as %(kept)s.")
                        % {"path": result.written_to, "kept": kept}
                    )
                )
            else:
                self.stdout.write(
                    self.style.SUCCESS(
                        _("Restored to %(path)s. Nothing else changed.")
                        % {"path": result.written_to}
                    )
                )

    def _audit(self, result: RestoreResult) -> None:
        try:
            audit_record(
                AuditAction.RESTORE,
                target=result.target.name,
                detail={
                    "backup": result.target.name,
                    "chain": result.target.chain,
                    "kept_as": [path.name for path in result.moved_aside],
                },
            )
        except DatabaseError as error:
            self.stderr.write(
                _("Warning: the restore was not recorded in the audit log (%(error)s).")
                % {"error": error}
            )
