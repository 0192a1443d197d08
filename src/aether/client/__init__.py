"""The client side of the control plane's HTTP API, called by the ``aether`` CLI commands.

``api`` (the only module importing requests: retries, bearer auth, error mapping),
``credentials`` (where the URL and token come from), ``account`` (login, rotate, logout),
``upload``/``multipart``/``resume`` (presigned and resumable multipart uploads), ``deploy``
(the whole deploy as one function), ``follow`` (a rollout until running/failed), ``logs``
(NDJSON streaming with resume) and ``apps`` (list, rollback, keys). Nothing here prints:
progress goes through callbacks that only the CLI draws.
"""
