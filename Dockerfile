# syntax=docker/dockerfile:1
# Activation Gateway: one image for the API (`serve`), the saga worker (`worker`), migrations
# (`migrate`) and the Flow Service emulator (`emulator`).

# --- build: the locked dependencies, then the project ----------------------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Exact versions, every file's sha256 checked (docs/development.md); a layer of its own, rebuilt only
# when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY flowservice_emulator ./flowservice_emulator
COPY migrations ./migrations
# Dependencies are in place; built with the locked setuptools rather than the newest one.
RUN pip install --no-deps --no-build-isolation .

# --- runtime: the virtual environment only, run by an unprivileged user --------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system gateway && useradd --system --gid gateway --home-dir /app --create-home gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/app/data
WORKDIR /app
USER gateway
EXPOSE 8080
# The image has no curl: probe liveness with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2).status == 200 else 1)"]
# SIGTERM: readiness turns 503 at once, requests are served for SHUTDOWN_DELAY_SECONDS, then the
# process shuts down gracefully; give it that long plus ~25 s (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["activation-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
