"""The app router: a plain asyncio HTTP/1.1 reverse proxy for ``<app>.<apps domain>``.

It listens on a port of its own (``aether serve --router-port``, ``AETHER_ROUTER_PORT``) and
never enters the ASGI stack: requests are parsed with httptools (llhttp), passed to the app's
instances over kept-alive upstream connections and streamed back. It keeps what the ASGI
proxy on the API port (:mod:`aether.server.proxy`) guarantees — the same headers reach the
app, the same errors come back — at a fraction of the cost per request (docs/benchmarks.md).

``server`` listens and decides where each request goes; ``connection`` reads the client's
requests; ``exchange`` relays one request and its answer; ``upstream`` keeps connections to
the apps; ``wire`` writes the bytes the router says itself; ``process`` runs it in a process
of its own beside ``aether serve``, apart from the API's event loop and threads.
"""
