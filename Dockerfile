# One image for web and workers. GPU workers build with --build-arg EXTRAS=ml,vllm
# and TORCH_INDEX pointing at a CUDA wheel index.
FROM python:3.11-slim AS base
ARG EXTRAS=ml
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml package.json package-lock.json ./
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC" && pip install -e ".[${EXTRAS}]"
COPY . .
RUN ./scripts/vendor_static.sh && python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "rprm_web.wsgi", "-b", "0.0.0.0:8000", "-w", "3", "--timeout", "120"]
