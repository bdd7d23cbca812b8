"""gunicorn settings: gthread workers, so a streaming answer holds a thread, not a process.

HOST/PORT choose the address (127.0.0.1:8000 by default; the Docker image sets
HOST=0.0.0.0). WEB_CONCURRENCY processes x GUNICORN_THREADS threads serve requests.
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# With gthread the timeout is the worker heartbeat, not a per-request limit: long
# streams are fine as long as the worker's main loop is alive.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Only trust X-Forwarded-* from the proxy address the operator names.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn's control socket would be shared by every server this user runs (one per
# user, not per DATA_DIR); Parley does not use it.
control_socket_disable = True
