# The Aether image: the control plane (`aether serve`, the default command), `aether worker`,
# and the Kubernetes init container (`aether fetch`). It carries only the single file for the
# image's architecture, so build the Linux files first:
#
#   make dist          # or: scripts/build-zipapp --platform linux-x86_64 --platform linux-aarch64
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example/aether:0.1.0 --push .
#   docker build -t aether .          # this machine's architecture only (BuildKit)
#   docker run -p 8080:8080 -v aether-data:/var/lib/aether aether
#
# The local runtime runs apps with Node.js, which this image does not include: deploy to it
# with AETHER_RUNTIME=kubernetes, or extend the image with Node.js 20 for the local runtime.

# Set by BuildKit for each platform it builds: amd64 or arm64.
ARG TARGETARCH

FROM scratch AS file-amd64
COPY dist/aether-linux-x86_64 /aether

FROM scratch AS file-arm64
COPY dist/aether-linux-aarch64 /aether

FROM file-${TARGETARCH} AS file

# The file runs on CPython 3.11-3.13 and carries bytecode for each.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AETHER_DATA_DIR=/var/lib/aether \
    AETHER_UNPACK_DIR=/opt/aether/unpacked

RUN groupadd --gid 1000 aether \
    && useradd --uid 1000 --gid aether --home-dir /home/aether --create-home --shell /usr/sbin/nologin aether \
    && mkdir -p /var/lib/aether /opt/aether \
    && chown aether:aether /var/lib/aether

COPY --from=file /aether /usr/local/bin/aether

# Unpack the file once at build time, so containers start at once and also run with a
# read-only root filesystem.
RUN chmod 0755 /usr/local/bin/aether && aether --version && chmod -R a+rX /opt/aether/unpacked

USER 1000:1000
WORKDIR /home/aether
VOLUME ["/var/lib/aether"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

ENTRYPOINT ["aether"]
CMD ["serve", "--host", "0.0.0.0"]
