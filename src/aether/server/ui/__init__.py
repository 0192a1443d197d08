"""The dashboard: server-rendered pages at ``/`` of ``aether serve`` (apps, an app's
releases and rollouts, live logs, deploy latency) for a team in a browser.

Mounted by :func:`aether.server.app.create_app` beside the API, which only ``aether serve``
runs: the client never imports it. Pages are Jinja2 templates (imported in
:mod:`aether.server.ui.templating` alone), with vendored htmx and uPlot and one small script
of our own under ``static/``; no build step. Browsers sign in with an API token or a
one-time link and then hold a session cookie (:mod:`aether.server.ui.session`); every page
applies the API's own role checks, and every state-changing form carries a CSRF token.
"""

from aether.server.ui.routes import ROUTES

__all__ = ["ROUTES"]
