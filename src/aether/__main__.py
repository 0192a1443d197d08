"""``python -m aether``: the interpreter check, then the same entry as the ``aether`` command."""

from aether.guard import SUPPORTED_PYTHONS, refuse_unsupported

refuse_unsupported({"name": "aether", "pythons": SUPPORTED_PYTHONS})

from aether.entry import main  # noqa: E402  (only once the interpreter is known to fit)

main()
