"""Which interpreters and platforms can run Aether, and a one-line refusal for the others.

Every ``aether`` process runs this first, before anything else is imported: the single-file
build embeds this source at the top of its entry (``scripts/build-zipapp``), and
``python -m aether`` imports it. A wrong interpreter gets one line naming what is needed and
what was found, and exit 10: never a traceback from a compiled module it cannot load.

So this file must parse and run on any Python a user may point at it (2.7 and every 3.x):
no annotations, no f-strings, nothing imported but ``os`` and ``sys`` (``subprocess`` only
to test a suggestion on the way out).
"""

import os
import sys

# aether.errors.EXIT_CONFIG; not imported from there: nothing else may load before this check.
EXIT_CONFIG = 10
SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))
SYSTEM_TITLES = {"linux": "Linux", "darwin": "macOS", "win32": "Windows", "cygwin": "Cygwin"}
# (system, machine) -> the file built for it (see scripts/build-zipapp).
BUILDS = {
    ("linux", "x86_64"): "aether-linux-x86_64",
    ("linux", "aarch64"): "aether-linux-aarch64",
    ("darwin", "arm64"): "aether-macos-arm64",
    ("darwin", "x86_64"): "aether-macos-x86_64",
}


def observed():
    """What this process runs on, as plain values: the ``found`` of :func:`problem`."""
    uname = os.uname() if hasattr(os, "uname") else None
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    return {
        "implementation": _implementation(),
        "version": tuple(sys.version_info[:3]),
        "executable": sys.executable or "python",
        "system": system,
        "machine": uname[4] if uname else "",
        "bits": 64 if sys.maxsize > 2**32 else 32,
        "glibc": _glibc_version() if system == "linux" else None,
        "macos": _macos_version(uname[2]) if system == "darwin" and uname else None,
    }


def problem(target, found):
    """Why ``found`` cannot run a build for ``target``, as one sentence; None when it can.

    ``target`` holds ``name`` and ``pythons`` and, for a single-file build, ``system``,
    ``machine`` and the ``glibc`` or ``macos`` floor its compiled parts need.
    """
    if not _python_fits(target, found):
        return _refusal(target, _python_title(found) + " (" + found["executable"] + ")")
    system = target.get("system")
    if not system:
        return None
    if found["system"] != system or found["machine"] != target["machine"] or found["bits"] != 64:
        return _refusal(target, _platform_title(found)) + _other_build_hint(found)
    floor = target.get("glibc")
    if floor and (found["glibc"] is None or tuple(found["glibc"]) < tuple(floor)):
        libc = "glibc " + _dotted(found["glibc"]) if found["glibc"] else "no glibc (musl?)"
        return _refusal(target, _platform_title(found) + " with " + libc)
    floor = target.get("macos")
    if floor and found["macos"] is not None and tuple(found["macos"]) < tuple(floor):
        return _refusal(target, "macOS " + _dotted(found["macos"]))
    return None


def refuse_unsupported(target):
    """Exit 10 with one line on stderr when this interpreter cannot run ``target``."""
    found = observed()
    message = problem(target, found)
    if message is None:
        return
    if target.get("system") and not _python_fits(target, found):
        # Name another interpreter only when the platform itself is right.
        supported = dict(found, implementation="cpython", version=tuple(target["pythons"][-1]))
        if problem(target, supported) is None:
            message += _interpreter_hint(target)
    sys.stderr.write("aether: error: " + message + "\n")
    sys.stderr.flush()
    sys.exit(EXIT_CONFIG)


def needs(target):
    """``CPython 3.11, 3.12 or 3.13 on Linux x86-64 (glibc 2.17+)``: what ``target`` runs on."""
    versions = [_dotted(version) for version in target["pythons"]]
    if len(versions) > 1:
        versions = [", ".join(versions[:-1]) + " or " + versions[-1]]
    text = "CPython " + versions[0]
    if target.get("system"):
        text += " on " + target["title"]
        if target.get("glibc"):
            text += " (glibc " + _dotted(target["glibc"]) + "+)"
        if target.get("macos"):
            text += " (macOS " + _dotted(target["macos"]) + "+)"
    return text


def _python_fits(target, found):
    pythons = [tuple(version) for version in target["pythons"]]
    return found["implementation"] == "cpython" and tuple(found["version"][:2]) in pythons


def _refusal(target, found_text):
    return target["name"] + " needs " + needs(target) + "; found " + found_text


def _implementation():
    implementation = getattr(sys, "implementation", None)
    if implementation is not None:
        return implementation.name
    return "pypy" if "PyPy" in sys.version else "cpython"


def _python_title(found):
    names = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy"}
    name = names.get(found["implementation"], found["implementation"])
    return name + " " + _dotted(found["version"])


def _platform_title(found):
    system = SYSTEM_TITLES.get(found["system"], found["system"])
    bits = "" if found["bits"] == 64 else " (a 32-bit Python)"
    return system + " " + (found["machine"] or "(unknown CPU)") + bits


def _dotted(version):
    return ".".join(str(part) for part in version)


def _glibc_version():
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; musl has no such name
    except (AttributeError, ValueError, OSError):
        return None
    if not text or not text.startswith("glibc "):
        return None
    try:
        return tuple(int(part) for part in text.split(" ")[1].split(".")[:2])
    except ValueError:
        return None


def _macos_version(darwin_release):
    """macOS from the Darwin kernel release: 20.x is macOS 11, 19.x is 10.15."""
    try:
        major = int(darwin_release.split(".")[0])
    except ValueError:
        return None
    return (major - 9, 0) if major >= 20 else (10, major - 4)


def _other_build_hint(found):
    name = BUILDS.get((found["system"], found["machine"]))
    return ("; download " + name + " instead") if name and found["bits"] == 64 else ""


def _interpreter_hint(target):
    """Name a supported interpreter on PATH that really runs (pyenv shims may not)."""
    import subprocess

    for version in reversed([tuple(v) for v in target["pythons"]]):
        command = "python" + _dotted(version)
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            candidate = os.path.join(folder, command)
            if not (folder and os.access(candidate, os.X_OK)):
                continue
            probe = "import sys; sys.exit(sys.version_info[:2] != " + repr(version) + ")"
            with open(os.devnull, "w") as devnull:
                runs = subprocess.call([candidate, "-c", probe], stdout=devnull, stderr=devnull)
            if runs == 0:
                return "; " + command + " is on PATH: run `" + command + " " + sys.argv[0] + " ...`"
    return ""
