"""The single-file build of Aether (``scripts/build-zipapp``): one zipapp per platform that
runs on every supported CPython version.

Steps, one module each: ``platforms`` (what is built), ``interpreters`` (the Pythons that
compile bytecode and the C extensions), ``wheels`` (the locked set, downloaded once into
``build/wheels``), ``layers`` (wheels unpacked and trimmed; the project with its extensions),
``bytecode`` (``.pyc`` for every version), ``roothelp`` (``aether --help`` rendered ahead),
``archive`` (the payload and the file around it, with ``launcher`` as its entry) and
``release`` (SHA256SUMS and its signature).
"""
