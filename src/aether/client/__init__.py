"""The client side of the control plane's HTTP API, called by the ``aether`` CLI commands.

``http`` (a lean HTTP/1.1 transport on the standard library: fast to import), ``api``
(retries, bearer auth, error mapping),
``credentials`` (where the URL and token come from), ``account`` (login, rotate, logout),
``upload``/``multipart``/``resume`` (presigned and resumable multipart uploads, sharing
the shapes in ``transfer``), ``deploy``
(the whole deploy as one function), ``follow`` (a rollout until running/failed), ``logs``
(NDJSON streaming with resume) and ``apps`` (list, rollback, keys). Nothing here prints:
progress goes through callbacks that only the CLI draws.
"""
