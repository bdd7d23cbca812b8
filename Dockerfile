# Parley: a thin image around scripts/entrypoint.sh (migrate, then gunicorn).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000
# pg_dump for `manage.py backup` on PostgreSQL (the entrypoint backs up before migrating).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system parley && useradd --system --gid parley --home-dir /app parley \
    && mkdir -p /data && chown parley:parley /data
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=parley:parley . /app
# Static files are collected at build time; the key is a throw-away for this step only.
RUN SECRET_KEY=collectstatic-only DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput -v 0 \
    && rm -rf /tmp/build-data
USER parley
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/scripts/healthcheck.py"]
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
