"""The reconciliation loop that puts deployments onto a runtime.

``loop.Worker`` runs passes over every app (one task per app at a time, under a lease), asks the
pure ``plan.plan`` what to do and has ``apply.Applier`` do it: store transitions, events and
runtime calls. ``service`` runs it for ``aether worker`` and inside ``aether serve``. Runtimes
live in ``runtimes/`` (local processes, Kubernetes). Called by the CLI only.
"""
