# The AlignScope image (API, dashboard and workers), built by docker-compose.yml.
# TORCH_SPEC picks the torch build: PyPI's Linux wheel carries CUDA (the default, for GPU workers);
# a CPU-only build for the API: --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
FROM python:3.11-slim
ARG TORCH_SPEC=torch==2.13.0
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY backend ./backend
COPY worker ./worker
COPY frontend ./frontend
COPY presets ./presets
RUN pip install ${TORCH_SPEC} -e . \
    && useradd --create-home --uid 1000 alignscope \
    && mkdir -p /data && chown alignscope /data
USER alignscope
