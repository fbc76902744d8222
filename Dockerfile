# syntax=docker/dockerfile:1.7
# One image for every process: `python -m services.ingest | services.drift | services.reports |
# gateway`, and `python -m runtime.schemas upgrade --service <service>` for migrations (the
# commands `make run` starts; k8s/ names them). Build and push:
#   docker build -t ghcr.io/upstream-health/upstream:1.1.0 .
#   docker push ghcr.io/upstream-health/upstream:1.1.0
# The base is pinned by digest; to move it, read the current one with
#   docker buildx imagetools inspect python:3.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84

FROM ${PYTHON_IMAGE} AS dependencies
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
# Wheels only: nothing is compiled, so the final stage needs no compiler either.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --only-binary=:all: --no-deps -r /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app:/app/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 upstream \
    && useradd --system --uid 10001 --gid upstream --no-create-home --home-dir /nonexistent upstream
COPY --from=dependencies /opt/venv /opt/venv
WORKDIR /app
COPY gen/ gen/
COPY runtime/ runtime/
COPY services/ services/
COPY gateway/ gateway/
USER 10001:10001
EXPOSE 8080 50051 50052 50053
CMD ["python", "-m", "gateway"]
