# The server image: `python -m steps.serve`, the model server that the canary Rollout deploys; its init container
# runs the same image as the model loader (`python -m steps.serve fetch ...`).
# Build from the repository root:  docker build -f images/serve.Dockerfile -t ghcr.io/argo-mlops/serve:<tag> .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install 'uv>=0.5,<1'
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python -r requirements.lock
COPY steps/ steps/
COPY workflows/ workflows/
COPY gates/ gates/
COPY README.md ./
RUN /opt/venv/bin/uv pip install --python /opt/venv/bin/python --no-deps .

FROM python:3.11.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["python", "-m", "steps.serve"]
