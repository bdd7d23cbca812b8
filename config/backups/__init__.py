"""Online backups of Parley's database: full and incremental, checked, restorable.

- `snapshot`: a consistent SQLite snapshot through the backup API, written as a full
  or incremental backup (`pagefile`: the data formats and page hashes).
- `manifest`: the JSON beside every backup (hashes, migrations, chain links), the
  `.verified.json` sidecar, names and atomic writes.
- `chain`: chains in the backup folder, the lock, retention (`--keep`), leftovers.
- `restore`: rebuild into a new file, check, then swap (`inuse`: is the database open?).
- `verify`: rebuild every chain in a temporary place.
- `postgres`: pg_dump full backups; incrementals are PostgreSQL's own job.
- `summary`: `latest_backups()` for the status page and /healthz.

The management commands `backup`, `restore` and `verify_backups` are thin wrappers.
"""

from __future__ import annotations

from config.backups.manifest import BackupError
from config.backups.summary import BackupSummary, latest_backups

__all__ = ["BackupError", "BackupSummary", "latest_backups"]
