"""The artifact domain: what the upload routes, the deployment routes and the garbage
collector decide about artifacts, apart from HTTP.

``registry`` (presign, multipart init, complete, the legacy direct upload), ``access`` (who
may upload to which app, the pending row of an upload in progress), ``verification`` (an
uploaded object against its digest; a signature against the app's public keys),
``retention`` (keep the newest N per app), ``gc`` (stale pending uploads, retention; ``aether
gc`` and ``serve``'s background task) and ``metrics`` (the registry's Prometheus series).
Callers: :mod:`aether.server.routes` and the ``gc``/``serve`` commands.
"""
