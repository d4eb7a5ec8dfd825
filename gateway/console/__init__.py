"""The operator's web console at ``/console``: server-rendered panels, polled every 2 s.

``routes.install_console(app)`` adds it to the app; ``session`` holds the cookie scheme the
admin-token middleware accepts for ``/console`` paths.
"""
