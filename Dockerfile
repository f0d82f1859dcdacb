# watchcache as a container: `docker run IMAGE --bind-address 0.0.0.0 --etcd-servers http://etcd:2379
# --config /cfg.yaml`, or with a private etcd inside the container: `... --embedded-etcd ...`.
# (The CLI binds 127.0.0.1 by default, which is unreachable from outside a container.)
FROM python:3.11-slim

# etcd-server provides /usr/bin/etcd, used only by `watchcache serve --embedded-etcd`.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY watchcache ./watchcache
RUN pip install --no-cache-dir . \
    && rm -rf /src

RUN useradd --system --create-home --home-dir /home/watchcache --shell /usr/sbin/nologin watchcache
USER watchcache
WORKDIR /home/watchcache

EXPOSE 8080
ENTRYPOINT ["watchcache", "serve"]
