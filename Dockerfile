# syntax=docker/dockerfile:1
# The agent service image: `python -m agentops serve module:factory` on uvicorn, as a non-root user.
# Build:  docker build -t agentops-serve .
# Run:    docker compose up   (compose.yaml adds Redis, Prometheus and the API-keys secret)
# No secret is baked in: API keys arrive at run time as a file (/run/secrets/api_keys) or AGENTOPS_API_KEYS.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY agentops ./agentops
RUN /opt/venv/bin/pip install ".[serve]"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 agentops \
    && useradd --system --uid 10001 --gid agentops --no-create-home --shell /usr/sbin/nologin agentops
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/agentops
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "agentops", "serve"]
CMD ["agentops.scenarios.deployment:support_agent", "--host", "0.0.0.0", "--public", "--port", "8080", "--keys-file", "/run/secrets/api_keys", "--rate", "60/minute", "--grace-s", "10"]
