"""gunicorn settings: gthread workers, so a streaming answer holds a thread, not a process.

HOST/PORT choose the address (127.0.0.1:8000 by default; the Docker image sets
HOST=0.0.0.0). WEB_CONCURRENCY processes x GUNICORN_THREADS threads serve requests.
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Every answer being streamed holds a thread for its whole length: with 8 threads a
# worker, 50 users made the 95th percentile of page loads 600 ms (pages waited for a
# stream to end); 16 made it 25-28 ms at about the same memory (bench/load.py; see
# docs/performance.md, "What the live-server runs changed").
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
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
