"""The admin REST API (FastAPI): one route module per resource under ``routes/``."""
