# The server image: `python -m steps.serve`, the model server that the canary Rollout deploys; its init container
# runs the same image as the model loader (`python -m steps.serve fetch ...`).
# Build from the repository root:  docker build -f images/serve.Dockerfile -t ghcr.io/argo-mlops/serve:<tag> .
# Every image it pulls is pinned by digest and every package is checked against a sha256 hash (images/README.md).
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.0@sha256:cdc6093146eb3ff6a40107b38f008b789e050e77ad87865e381d9917da55a168 /uv /usr/local/bin/uv
# No cache to leave behind in the layer; the base image's Python, never a downloaded one.
ENV UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never
RUN uv venv /opt/venv --python /usr/local/bin/python3
WORKDIR /src
# Dependencies first (pinned, with hashes, by the lock file), so this layer is cached until they change.
COPY pyproject.toml requirements.lock images/build-requirements.txt ./
RUN uv pip install --python /opt/venv/bin/python --require-hashes -r requirements.lock -r build-requirements.txt
COPY steps/ steps/
COPY workflows/ workflows/
COPY gates/ gates/
COPY README.md ./
# The project itself: no dependency to fetch, and its build backend is the hash-checked setuptools above.
RUN uv pip install --python /opt/venv/bin/python --no-deps --no-build-isolation .

FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["python", "-m", "steps.serve"]
