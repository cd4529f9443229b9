# Three stages: node fetches the front-end libraries (and stays in that stage), a
# build stage installs Python dependencies from the lock into /venv, and the runtime
# image holds only Python, /venv, the app and its collected static files, run by a
# non-root user. Build arguments pick the extras:
#   web          EXTRAS=""   (base install: the web never loads a model)
#   CPU worker   EXTRAS=ml   (CPU torch from the lock)
#   GPU worker   EXTRAS=ml TORCH_INDEX=https://download.pytorch.org/whl/cu128 TORCH_SPEC=torch==2.13.0

# --- 1. static files: node only here -----------------------------------------------------
FROM node:22-slim AS static
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/vendor_static.sh scripts/
RUN ./scripts/vendor_static.sh

# --- 2. Python dependencies from the lock --------------------------------------------------
FROM python:3.11-slim AS build
ARG EXTRAS=ml
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch==2.13.0+cpu"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
# torch comes first from the wheel index the build asks for (CPU or CUDA); the rest
# from the lock, without its torch pin so a CUDA build is not refused.
RUN grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
 && case ",${EXTRAS}," in *,ml,*) pip install --extra-index-url "$TORCH_INDEX" "$TORCH_SPEC" ;; esac \
 && if [ -n "$EXTRAS" ]; then spec=".[${EXTRAS}]"; else spec="."; fi \
 && pip install -c /tmp/constraints.txt "$spec"

# --- 3. runtime: no node, no compilers, not root -------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PATH=/venv/bin:$PATH RPRM_VAR_DIR=/app/var
RUN useradd --create-home --uid 10001 --user-group rprm \
 && mkdir -p /models /data/media && chown rprm:rprm /models /data/media
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=rprm:rprm . .
COPY --from=static --chown=rprm:rprm /src/static/vendor static/vendor
# A throw-away key so settings import without writing one into the image.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
 && chown -R rprm:rprm /app/var
USER rprm
EXPOSE 8000
CMD ["gunicorn", "rprm_web.wsgi", "-b", "0.0.0.0:8000", "-w", "3", "--timeout", "120"]
