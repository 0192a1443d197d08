# The Aether image: the control plane (`aether serve`, the default command), `aether worker`,
# and the Kubernetes init container (`aether fetch`). It carries only the zipapp, so build that
# first on Linux x86-64 with Python 3.11 — the zipapp holds CPython 3.11 extension modules:
#
#   make zipapp && docker build -t aether .
#   docker run -p 8080:8080 -v aether-data:/var/lib/aether aether
#
# The local runtime runs apps with Node.js, which this image does not include: deploy to it
# with AETHER_RUNTIME=kubernetes, or extend the image with Node.js 20 for the local runtime.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AETHER_DATA_DIR=/var/lib/aether \
    SHIV_ROOT=/opt/aether/shiv

RUN groupadd --gid 1000 aether \
    && useradd --uid 1000 --gid aether --home-dir /home/aether --create-home --shell /usr/sbin/nologin aether \
    && mkdir -p /var/lib/aether /opt/aether \
    && chown aether:aether /var/lib/aether

COPY dist/aether /usr/local/bin/aether

# Unpack and compile the zipapp once at build time, so containers start at once and also run
# with a read-only root filesystem.
RUN chmod 0755 /usr/local/bin/aether && aether --version && chmod -R a+rX /opt/aether/shiv

USER 1000:1000
WORKDIR /home/aether
VOLUME ["/var/lib/aether"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python3.11", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

ENTRYPOINT ["aether"]
CMD ["serve", "--host", "0.0.0.0"]
