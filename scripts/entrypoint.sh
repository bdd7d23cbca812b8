#!/bin/sh
# Container (and `make run`) entrypoint: bring the database up to date, tidy answers
# left streaming by a killed worker, then serve.
# With arguments, runs them instead of gunicorn (e.g. `manage.py createsuperuser`).
set -eu
cd "$(dirname "$0")/.."
# One process for the start-up steps (`manage.py prestart`): back up before the schema
# changes, only when migrations are pending on an existing database (a failed backup
# stops the start; PARLEY_BACKUP_BEFORE_MIGRATE=false skips it, e.g. PostgreSQL without
# pg_dump in the image, backed up by the database server itself), migrate, then mark
# answers a killed worker left half-written "interrupted" (their text is kept).
python manage.py prestart
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
# glibc malloc: a fixed mmap threshold returns big transient blocks (an Argon2 hash's
# 19 MiB at log-in) to the system when freed, instead of keeping them in the heap of the
# thread that hashed; two arenas stop each of gunicorn's threads growing its own.
# Measured in docs/performance.md ("What the live-server runs changed"); set either
# variable to override.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}"
exec gunicorn -c config/gunicorn.conf.py config.wsgi:application
