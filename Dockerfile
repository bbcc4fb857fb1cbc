# The reference app (and its RQ worker) with sublarr-telemetry, for compose.yaml.
# Runs as an unprivileged user on a read-only root filesystem: state lives in
# /data (a volume) and /tmp (a tmpfs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SUBLARR_DATA_DIR=/data \
    SUBLARR_METRICS_PATH=/metrics

WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY examples/refapp ./examples/refapp
COPY constraints/newest.txt ./constraints/
# The versions CI tests at the newest end of the ranges.
RUN pip install -c constraints/newest.txt . ./examples/refapp && useradd --system --uid 10001 --home-dir /data sublarr \
    && mkdir -p /data && chown sublarr /data

USER sublarr
WORKDIR /data
EXPOSE 8000
# One worker with threads: Sublarr's own set-up, scraped directly on /metrics.
CMD ["gunicorn", "--workers", "1", "--threads", "4", "--bind", "0.0.0.0:8000", \
     "--worker-tmp-dir", "/tmp", "refapp.wsgi:app"]
