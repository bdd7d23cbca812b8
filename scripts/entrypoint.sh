#!/bin/sh
# Container (and `make run`) entrypoint: bring the database up to date, tidy answers
# left streaming by a killed worker, then serve.
# With arguments, runs them instead of gunicorn (e.g. `manage.py createsuperuser`).
set -eu
cd "$(dirname "$0")/.."
# Back up before the schema changes: only when migrations are pending on an existing
# database (`backup --skip-empty` does nothing on a fresh one). A failed backup stops the
# start; PARLEY_BACKUP_BEFORE_MIGRATE=false skips this step (e.g. PostgreSQL without
# pg_dump in the image, backed up by the database server itself).
if [ "${PARLEY_BACKUP_BEFORE_MIGRATE:-true}" != "false" ] \
  && ! python manage.py migrate --check >/dev/null 2>&1; then
  python manage.py backup --full --keep "${PARLEY_BACKUP_KEEP:-10}" --skip-empty -v 1
fi
python manage.py migrate --noinput
# Answers a killed worker left half-written become "interrupted" (their text is kept).
python manage.py sweep_streams
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec gunicorn -c config/gunicorn.conf.py config.wsgi:application
