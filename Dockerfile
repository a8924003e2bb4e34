FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mipro mipro
COPY workflows workflows
COPY activities activities
COPY starter starter
COPY worker.py ./
COPY configs configs
RUN pip install --no-cache-dir .
ENTRYPOINT []
