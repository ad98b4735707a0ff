# syntax=docker/dockerfile:1
#
# diamond-risk-map: the service with the bundled layers already built.
#
#   docker build -t diamond-risk-map .
#   docker run -p 8000:8000 diamond-risk-map
#
# See docs/docker.md. geopandas, pyogrio, shapely, pyproj and pyarrow install as manylinux
# wheels that carry their own GDAL/GEOS/PROJ, so no system library is installed.

ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# --- stage 0: the map libraries from npm (the pages load them from the service, no CDN) -----
FROM ${NODE_IMAGE} AS assets
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- stage 1: install the package and build the layers -------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# README.md is the package's long description; the wildcard keeps a checkout without it buildable.
COPY pyproject.toml constraints.txt README.md* ./
COPY geo_service/ geo_service/
COPY scripts/ scripts/
# A regular (non-editable) install, at the tested versions: the runtime image does not need
# the source tree.
RUN pip install --no-cache-dir -c constraints.txt .

# Build the bundled sources now, so a container serves data from its first second and a
# broken source fails the image build instead of the deployment.
COPY layers/sources.toml layers/risk.toml layers/maps.toml layers/
COPY layers/sources/ layers/sources/
RUN riskmap build --build-dir /app/layers/build

# --- stage 2: runtime -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RISKMAP_HOST=0.0.0.0 \
    RISKMAP_PORT=8000 \
    RISKMAP_CATALOG=/app/layers/sources.toml \
    RISKMAP_BUILD_DIR=/app/layers/build \
    RISKMAP_MAPS_FILE=/app/layers/maps.toml \
    RISKMAP_ASSETS_DIR=/app/node_modules
WORKDIR /app

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin riskmap

# The venv's interpreter links to /usr/local/bin/python, which the same base image provides.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/scripts /app/scripts
COPY --from=builder /app/layers/sources.toml /app/layers/risk.toml /app/layers/maps.toml /app/layers/
COPY --from=assets /app/node_modules /app/node_modules
COPY --from=builder /app/layers/sources /app/layers/sources
# The builds folder (with its `current` symlink, which COPY keeps as a link) belongs to the
# service user, so `riskmap build` can write a new build into a running container.
COPY --from=builder --chown=riskmap:riskmap /app/layers/build /app/layers/build

USER riskmap
EXPOSE 8000

# /health answers 503 while no build is current, which urlopen raises as an error.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["riskmap", "serve", "--host", "0.0.0.0", "--port", "8000"]
