# The offers API (and the `offers` jobs) in one image. Build: docker build -t loyalty-offers .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# lightfm 1.17 builds only without build isolation, with numpy, scipy and setuptools < 70 present;
# without -march=native (LIGHTFM_NO_CFLAGS), so it computes the same on every CPU, and with
# -ffast-math on the compiler only, never the linker (see the Makefile).
RUN pip install "setuptools==65.5.0" "wheel==0.48.0" "numpy==2.4.6" "scipy==1.17.1" \
    && LIGHTFM_NO_CFLAGS=1 \
       CC="$(python -c 'import sysconfig; print(sysconfig.get_config_var("CC"))') -ffast-math" \
       LDSHARED="$(python -c 'import sysconfig; print(sysconfig.get_config_var("LDSHARED"))')" \
       pip install --no-build-isolation "lightfm==1.17"
COPY pyproject.toml README.md ./
COPY recsys recsys
COPY models models
COPY training training
COPY serving serving
RUN pip install --no-build-isolation . && useradd --create-home offers
USER offers
ENV OFFERS_HOST=0.0.0.0 PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
CMD ["offers", "serve"]
