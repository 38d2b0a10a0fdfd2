# The node image: one image for every role (`cqkd bootstrap|worker|alice|bob`).
# Dependencies come from a wheelhouse built on the controller, so the build needs no network:
#   images/build-wheelhouse.sh build/wheelhouse
#   docker build --network none [--build-arg BASE_IMAGE=cqkd-base:bookworm] -t cqkd-node .
# Without a registry, images/build-base.sh makes cqkd-base:bookworm from Debian packages.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
COPY build/wheelhouse/ /wheels/
RUN python3 -m venv /opt/cqkd \
    && /opt/cqkd/bin/pip install --no-cache-dir --no-index --find-links /wheels cqkd \
    && /opt/cqkd/bin/pip uninstall --yes pip

FROM ${BASE_IMAGE}
ARG CQKD_VERSION=0.0.0
ARG VCS_REF=unknown
ARG CQKD_SOURCE_DIGEST=unknown
LABEL io.cqkd.project=cqkd \
      io.cqkd.source-digest="${CQKD_SOURCE_DIGEST}" \
      org.opencontainers.image.title="cqkd-node" \
      org.opencontainers.image.description="CQKD DHT node: bootstrap, worker, Alice or Bob" \
      org.opencontainers.image.version="${CQKD_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/cqkd/cqkd-dht"
# A fixed uid/gid so that volumes and host files line up across hosts.
RUN groupadd --system --gid 10001 cqkd \
    && useradd --system --uid 10001 --gid cqkd --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cqkd
COPY --from=build /opt/cqkd /opt/cqkd
ENV PATH=/opt/cqkd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# The node handles SIGTERM itself (graceful leave), so no init is needed.
STOPSIGNAL SIGTERM
# `cqkd probe` costs about 0.6 CPU-seconds (it imports the settings): deployments of many
# nodes on one host override it with a lighter probe and a longer interval.
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=3 CMD ["cqkd", "probe"]
ENTRYPOINT ["cqkd"]
CMD ["--help"]
