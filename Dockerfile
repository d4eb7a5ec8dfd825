# The gateway image: `docker compose up` runs it against PostgreSQL (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY core core
COPY channels channels
COPY gateway gateway
COPY migrations migrations
RUN pip install . && useradd --system --create-home --home-dir /srv/switchboard switchboard

USER switchboard
WORKDIR /srv/switchboard
ENV SWITCHBOARD_CONFIG=/etc/switchboard/switchboard.toml
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
# --migrate: the schema is brought up to date before serving (idempotent).
CMD ["switchboard", "run", "--migrate"]
