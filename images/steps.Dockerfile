# The step image: runs every `python -m steps.<name>` of the argo-mlops WorkflowTemplates.
# Build from the repository root:  docker build -f images/steps.Dockerfile -t ghcr.io/argo-mlops/steps:<tag> .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install 'uv>=0.5,<1'
WORKDIR /src
# Dependencies first (pinned by the lock file), so this layer is cached until they change.
COPY pyproject.toml requirements.lock ./
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python -r requirements.lock
COPY steps/ steps/
COPY workflows/ workflows/
COPY gates/ gates/
COPY README.md ./
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:3.11.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    GX_ANALYTICS_ENABLED=false HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["python", "-m"]
CMD ["steps.validate", "--help"]
