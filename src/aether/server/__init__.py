"""The control-plane API: a starlette app built by :func:`aether.server.app.create_app`.

``aether serve`` runs it on hypercorn (:mod:`aether.server.launch`); routes live in
:mod:`aether.server.routes`, the artifact domain in :mod:`aether.server.artifacts`.
"""
