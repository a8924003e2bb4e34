# The MIPRO image: worker, REST API, CLI, simulated LLM and example task apps (one image, one entrypoint
# with a mode per compose service: deploy/entrypoint.sh). Configured by environment variables only.
# tests/unit/test_dockerfile.py checks this file against the package layout and (pytest -m slow) runs its
# install step the same way in a fresh venv.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY mipro mipro
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY worker.py ./
COPY configs configs
RUN pip install --no-cache-dir .

COPY deploy/entrypoint.sh /usr/local/bin/mipro-entrypoint
RUN chmod 0755 /usr/local/bin/mipro-entrypoint \
    && useradd --create-home --uid 10001 mipro \
    && mkdir -p /data/api /data/cache /data/datasets \
    && chown -R mipro:mipro /data

USER mipro
# The interceptor (worker), the REST API, the simulated LLM, the banking77 app.
EXPOSE 8400 8000 8300 8102
ENTRYPOINT ["mipro-entrypoint"]
CMD ["worker"]
