# The gateway: one image for the server, the Celery worker and beat (see docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_DATA_DIR=/app/var

WORKDIR /app
# The runtime only: the test and bench tools (requirements-test.txt) stay out of the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /app/var \
    && GATEWAY_SECRET_KEY=build-time-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R gateway:gateway /app/var
USER gateway
# Set GATEWAY_SECRET_KEY at run time, the same on every instance (admin sessions, signed values).

EXPOSE 4000
# Liveness only: readiness (/health/readiness) is for the load balancer, not for restarting the container.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:4000/health/liveliness', timeout=2).status != 200)"]
# SIGTERM (docker stop) drains: give it longer than GATEWAY_GRACEFUL_TIMEOUT (compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["python", "manage.py", "gateway", "--host", "0.0.0.0", "--port", "4000"]
