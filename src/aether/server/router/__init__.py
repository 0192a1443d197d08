"""The router: a plain asyncio HTTP/1.1 reverse proxy in front of the API and the apps.

It listens on the API's port (and on ``aether serve --router-port``, ``AETHER_ROUTER_PORT``,
for apps alone) and never enters the ASGI stack: requests are parsed with httptools
(llhttp); those for ``<app>.<apps domain>`` are passed to the app's instances over
kept-alive upstream connections and streamed back, every other one goes the same way to the
API on its private unix socket (:mod:`aether.server.launch`). App traffic thus costs a
fraction of what it would through the API server (docs/benchmarks.md).

``server`` listens and decides where each request goes; ``connection`` reads the client's
requests; ``exchange`` relays one request and its answer; ``upstream`` keeps connections to
the apps and the API; ``wire`` writes the bytes the router says itself; ``process`` runs the
routers in a process of their own beside ``aether serve``, apart from the API's event loop and
threads.
"""
