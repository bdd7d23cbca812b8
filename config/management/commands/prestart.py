"""manage.py prestart: the entrypoint's start-up steps, in one process.

1. When migrations are pending, back up first (``backup --full --keep
   $PARLEY_BACKUP_KEEP --skip-empty``; ``PARLEY_BACKUP_BEFORE_MIGRATE=false`` skips it).
   A failed backup stops the start: nothing is migrated.
2. ``migrate --noinput`` (always, as before: its system checks and post-migrate steps
   run on every start).
3. ``sweep_streams``: answers a killed worker left ``streaming`` become ``interrupted``.

The same steps as three ``manage.py`` processes cost three Django start-ups (about 0.5 s
each on a 2-core machine); together they cost one (bench/startup.py).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.translation import gettext_lazy

from config.i18n import TranslatedHelpCommand


def migrations_pending(database: str = DEFAULT_DB_ALIAS) -> bool:
    """What ``migrate --check`` answers: is any migration of the project unapplied?"""
    executor = MigrationExecutor(connections[database])
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Start-up steps of the entrypoint in one process: back up when migrations are "
        "pending (PARLEY_BACKUP_BEFORE_MIGRATE=false skips it; PARLEY_BACKUP_KEEP, default "
        "10, is its --keep), migrate, then mark answers left streaming as interrupted."
    )
    # Like `backup`: the backup must run even when a check fails (lost keys); `migrate`
    # runs every system check itself right after and stops the start on an error.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        backup = os.environ.get("PARLEY_BACKUP_BEFORE_MIGRATE", "true") != "false"
        if backup and migrations_pending():
            keep = os.environ.get("PARLEY_BACKUP_KEEP", "10")
            call_command("backup", "--full", "--keep", keep, "--skip-empty", verbosity=1)
        call_command("migrate", interactive=False, verbosity=verbosity)
        call_command("sweep_streams", verbosity=verbosity)
