# watchcache as a container image, on a pinned Debian release (bookworm).
#
#   docker build -t watchcache:0.1.0 .
#   docker run --rm -p 8080:8080 watchcache:0.1.0      # the example resources, a private etcd inside
#
# The entrypoint is `watchcache serve`; arguments replace the default ones below, e.g. the shared etcd
# and a configuration with tenants: `--config /cfg/watchcache.yaml --etcd-servers http://etcd:2379
# --bind-address 0.0.0.0`. deploy/ runs it on Kubernetes.
FROM python:3.11-slim-bookworm

# etcd-server provides /usr/bin/etcd, used only by `watchcache serve --embedded-etcd` (the default
# command below).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY watchcache ./watchcache
RUN pip install --no-cache-dir '.[speed]' \
    && rm -rf /src

COPY examples/watchcache.yaml /etc/watchcache/watchcache.yaml

# A numeric user, so that Kubernetes' runAsNonRoot can check it (deploy/ runs as 10001 too).
RUN groupadd --system --gid 10001 watchcache \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/watchcache \
        --shell /usr/sbin/nologin watchcache
USER 10001:10001
WORKDIR /home/watchcache

EXPOSE 8080
# Slim images have no curl: Python asks /livez (200 while the process serves). Another port or HTTPS:
# set WATCHCACHE_HEALTHCHECK_URL.
ENV WATCHCACHE_HEALTHCHECK_URL=http://127.0.0.1:8080/livez
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; urllib.request.urlopen(os.environ['WATCHCACHE_HEALTHCHECK_URL'], timeout=2, context=ssl._create_unverified_context())"]

ENTRYPOINT ["watchcache", "serve"]
CMD ["--config", "/etc/watchcache/watchcache.yaml", "--embedded-etcd", "--bind-address", "0.0.0.0"]
