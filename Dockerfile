# syntax=docker/dockerfile:1
#
# bridge-runner container image.
#
#   docker build -t bridge-runner .
#   mkdir -p .state && docker run --rm --user "$(id -u):$(id -g)" \
#       -v "$PWD/bridges:/bridges" -v "$PWD/.state:/var/lib/bridge-runner" \
#       -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -p 127.0.0.1:9090:9090 bridge-runner
#
# (--user: the runner writes *.status.json next to the bridges, so it runs as their owner.)
#
# Two stages: the builder turns the source tree into a wheel and installs it (with its runtime
# dependencies, no extras) into a virtualenv; the final stage copies only that virtualenv onto
# the same slim base, so no build tooling, source tree or pip cache ends up in the image.
# tests/project/test_container.py repeats the builder's steps in a clean venv (no Docker engine on CI).

# Pinned by tag; pin by digest too (python:3.11.13-slim-bookworm@sha256:...) where builds must
# be reproducible byte for byte. Both stages must share it: the virtualenv refers to its python.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (pyproject reads README.md as the long description).
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/bridge-runner \
    && /opt/bridge-runner/bin/pip install --no-cache-dir /wheels/*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="bridge-runner" \
      org.opencontainers.image.description="Amazon Cognito user pool changes as CloudEvents, declared as YAML bridge files kept in git" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid (not 0, not a name) so that Kubernetes' runAsNonRoot can verify
# it and volume ownership (fsGroup, compose volumes) can be planned.
RUN groupadd --system --gid 10001 bridge-runner \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin bridge-runner \
    && mkdir -p /var/lib/bridge-runner /bridges /run/secrets \
    && chown 10001:10001 /var/lib/bridge-runner

COPY --from=builder /opt/bridge-runner /opt/bridge-runner
COPY deploy/container/healthcheck.py /opt/bridge-runner/healthcheck.py

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only (Kubernetes manifests make it so).
# DL3064 flags BRIDGE_RUNNER_SECRETS_DIR by its name: it is a directory path, not a secret value.
# hadolint ignore=DL3064
ENV PATH=/opt/bridge-runner/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_RUNNER_STATE_DIR=/var/lib/bridge-runner \
    BRIDGE_RUNNER_SECRETS_DIR=/run/secrets \
    BRIDGE_RUNNER_METRICS_ADDR=0.0.0.0:9090

# The SQLite outbox and checkpoints: losing them means a new baseline scan and lost pending events.
VOLUME ["/var/lib/bridge-runner"]
EXPOSE 9090
USER 10001:10001

# There is no curl in the slim image: the check is a few lines of stdlib Python that GETs
# /healthz on the port of BRIDGE_RUNNER_METRICS_ADDR. Kubernetes ignores it and uses its probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/bridge-runner/healthcheck.py"]

ENTRYPOINT ["bridge-runner"]
CMD ["run", "/bridges"]
