# The offers API (and the `offers` jobs) in one image. Build: docker build -t loyalty-offers .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# LightFM and what its build needs, built as `make setup` builds it (the script says why so).
COPY scripts/install-lightfm.sh /tmp/install-lightfm.sh
RUN bash /tmp/install-lightfm.sh python && rm /tmp/install-lightfm.sh
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
