# syntax=docker/dockerfile:1
# The one image of every GraphSpace process (web, worker, beat, bridge, flower): the entry point
# is scripts/process.sh, the same script the Procfile runs, so a container's command line is
# the process's name and nothing else (`docker run graphspace-notifications worker`).

# --- builder: the pinned packages in a virtual environment, copied whole into the runtime ---
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/build/
RUN /opt/venv/bin/pip install -r /tmp/build/requirements.txt -c /tmp/build/constraints.txt

# --- runtime ----------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm

# process.sh is a bash script. bash is Essential in Debian, so the slim image has it; this
# line fails the build if a future base image ever drops it.
RUN bash --version >/dev/null

RUN groupadd --system --gid 10001 graphspace \
 && useradd --system --uid 10001 --gid graphspace --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin graphspace

COPY --from=builder /opt/venv /opt/venv

# process.sh runs "${VENV:-$ROOT/.venv}/bin/...": VENV points it at the image's environment.
# WEB_HOST and FLOWER_HOST listen on every interface inside the container; docker-compose.yml
# publishes the ports on the host's loopback only.
ENV VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=graphspace.settings \
    WEB_HOST=0.0.0.0 \
    FLOWER_HOST=0.0.0.0

WORKDIR /app
# The code belongs to root and is read-only for the processes; only var/ is theirs to write.
COPY . /app
RUN mkdir -p /app/var && chown graphspace:graphspace /app/var

USER graphspace
EXPOSE 8000 5555

ENTRYPOINT ["scripts/process.sh"]
CMD ["web"]
