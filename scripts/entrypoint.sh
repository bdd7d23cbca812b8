#!/bin/sh
# Container (and `make run`) entrypoint: bring the database up to date, tidy answers
# left streaming by a killed worker, then serve.
# With arguments, runs them instead of gunicorn (e.g. `manage.py createsuperuser`).
set -eu
cd "$(dirname "$0")/.."
python manage.py migrate --noinput
# Answers a killed worker left half-written become "interrupted" (their text is kept).
python manage.py sweep_streams
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec gunicorn -c config/gunicorn.conf.py config.wsgi:application
