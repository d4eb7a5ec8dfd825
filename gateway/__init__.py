"""The application: admin API, CLI, runner and the wiring of everything below."""

__version__ = "0.1.0"
