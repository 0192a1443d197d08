"""What a standby's Node.js does while it waits: resolve its dependency layer's requires ahead.

Half of what Node.js spends loading an app's dependencies (Express: ~125 modules) is finding
them — stat calls along ``node_modules`` paths, ``package.json`` reads and ``exports`` maps,
real paths — and loading the built-in modules they name; compiling and running their code is
the rest. Resolving a request runs no code of the app or its dependencies, and what Node.js
learns doing it (its path, real-path and ``package.json`` caches) is the same whenever it
resolves the same request from the same file. So, after saying ``ready``, the standby's
bootstrap (:mod:`aether.worker.runtimes.warmnode`) walks the dependency layer from the packages
the app's entry file requires, then from its other direct dependencies: it reads each module
file found, resolves each ``require('…')`` named in
its text (a string match: a request in a comment or a branch never taken is only resolved),
and follows what resolves to a file of the layer; then it loads the built-in modules named
that are in :data:`QUIET_BUILTINS`, whose loading reads nothing the activation changes (no
``PORT`` or per-deployment value, not the working directory). Module code of the app or its
dependencies never runs before the activation, and ``require.cache`` and ``module.children``
stay empty: a later ``require`` finds what the walk resolved as a cold start would, only
sooner.

Nothing is walked when ``NODE_OPTIONS`` preloads a module (``--require``, ``--import``, a
loader): such a module may hook resolution, and its hook may depend on the working directory.
Only a layer outside the release folder is walked (``node_modules`` linked to the host's layer
cache, read-only in the sandbox): its files have the same paths in the next release, so the
caches hold for it. The walk stops at :data:`MAX_FILES` files or :data:`BUDGET_MS` (a deploy
that arrives meanwhile waits for it). Resolving may warn (a deprecated ``main`` or ``exports``
form): Node.js warns once per process, so the app would miss that warning — the bootstrap
then declines the release (:data:`WARNED`), which starts cold, and the worker walks no more
for that app and layer. Standard library only: the supervisor imports this.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

MAX_FILES = 2000  # module files read at most (Express: ~125)
BUDGET_MS = 300  # the walk's wall time at most
MAX_FILE_BYTES = 16 * 1024 * 1024  # a bigger module file is not read (nor its requires)
MAX_ROOTS = 1000
MAX_PACKAGE_JSON_BYTES = 1024 * 1024
MAX_ENTRY_BYTES = 1024 * 1024  # of the entry file, for the packages it requires
# The reason a standby that warned while it resolved gives (the worker recognises it).
WARNED = "a dependency warned while the standby resolved it ahead"
# Built-in modules whose loading has no effect that depends on the environment, the working
# directory or the arguments, and prints nothing (not cluster, domain, punycode, sys, repl,
# inspector, wasi, test and other experimental ones).
QUIET_BUILTINS = (
    "assert", "async_hooks", "buffer", "child_process", "crypto", "dgram", "diagnostics_channel",
    "dns", "events", "fs", "fs/promises", "http", "http2", "https", "net", "os", "path",
    "perf_hooks", "querystring", "readline", "stream", "stream/promises", "string_decoder",
    "timers", "timers/promises", "tls", "tty", "url", "util", "util/types", "v8", "vm",
    "worker_threads", "zlib",
)  # fmt: skip
_NAME = re.compile(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", re.IGNORECASE)
# What the walk reads as a require (the same pattern as its JavaScript's).
_REQUIRE = re.compile(r"""\brequire\s*\(\s*(['"])([^'"\n]{1,512})\1\s*\)""")

# The walk, in the bootstrap: a function of the plan ({layer, roots, maxFiles, maxFileBytes,
# budgetMs, builtins}) that returns '' or, when something warned, what (printable, short).
WALK = r"""
function resolveAhead(plan) {
  // A module preloaded through NODE_OPTIONS may hook resolution, and its hook may depend on
  // the working directory or the environment: nothing is resolved ahead then.
  if (/(^|\s)(-r|--require|--import|--loader|--experimental-loader|--experimental-policy)(\s|=|$)/.test(
    process.env.NODE_OPTIONS || '')) return '';
  const Module = require('module');
  const path = require('path');
  const requireRe = /\brequire\s*\(\s*(['"])([^'"\n]{1,512})\1\s*\)/g;
  const isBuiltin = Module.isBuiltin || ((n) => Module.builtinModules.includes(n));
  const inLayer = plan.layer + path.sep;
  const until = Date.now() + plan.budgetMs;
  const within = () => seen.size < plan.maxFiles && Date.now() < until;
  const seen = new Set();
  const queue = [];
  const named = new Set();
  const follow = (file) => {
    if (file.startsWith(inLayer) && /\.c?js$/.test(file) && !seen.has(file)) {
      seen.add(file);
      queue.push(file);
    }
  };
  const resolveFrom = (file, request) => {
    try { follow(Module.createRequire(file).resolve(request)); } catch {}
  };
  const emitWarning = process.emitWarning;
  let warned = '';
  process.emitWarning = (warning) => {
    warned = warned || String((warning && warning.message) || warning || '?');
  };
  try {
    const root = path.join(path.dirname(plan.layer), 'index.js');  // where the layer is node_modules
    let i = 0;
    for (const group of plan.roots) {  // each group's closure before the next group's
      for (const name of group) if (within()) resolveFrom(root, name);
      for (; i < queue.length && within(); i++) {
        let text;
        try {
          if (fs.statSync(queue[i]).size > plan.maxFileBytes) continue;  // (a bundle, say)
          text = fs.readFileSync(queue[i], 'utf8');
        } catch { continue; }
        for (const match of text.matchAll(requireRe)) {
          const request = match[2];
          if (isBuiltin(request)) named.add(request.replace(/^node:/, ''));
          else if (within()) resolveFrom(queue[i], request);
        }
      }
    }
    for (const name of named) if (plan.builtins.includes(name)) require(name);
  } catch {
    // (an error here stops the walk early: what it resolved holds all the same)
  } finally {
    process.emitWarning = emitWarning;
  }
  return warned.replace(/[^\x20-\x7e]/g, '?').slice(0, 160);
}
"""


def plan(folder: Path, entry: str | None = None) -> dict[str, object] | None:
    """What the standby of the release in ``folder`` resolves ahead: its dependency layer
    (the real path of its ``node_modules`` when that links outside the folder), first from
    what the app's entry file requires, then from its other direct dependencies; None when
    there is none."""
    modules = folder / "node_modules"
    if not modules.is_symlink():
        return None  # in the release folder: its paths change with the next release
    layer = os.path.realpath(modules)
    if not os.path.isdir(layer) or Path(layer).is_relative_to(folder.resolve()):
        return None
    return {
        "layer": layer,
        "roots": [
            entry_requires(_inside(folder, entry)) if entry else [],
            direct_dependencies(_inside(folder, "package.json")),
        ],
        "maxFiles": MAX_FILES,
        "maxFileBytes": MAX_FILE_BYTES,
        "budgetMs": BUDGET_MS,
        "builtins": list(QUIET_BUILTINS),
    }


def _inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it is a file inside the release folder (the worker reads it:
    a start command or a link must not point it at another app's files)."""
    try:
        path = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(folder.resolve()) and path.is_file() else None


def entry_requires(entry: Path | None) -> list[str]:
    """The packages the entry file requires (bare requests, in their order); [] when it
    cannot be read. A string match, as the walk's: only ever resolved."""
    try:
        if entry is None:
            return []
        with entry.open("rb") as stream:
            text = stream.read(MAX_ENTRY_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return []
    names: list[str] = []
    for match in _REQUIRE.finditer(text):
        request = match.group(2)
        if not request.startswith((".", "/")) and request not in names:
            names.append(request)
    return names[:MAX_ROOTS]


def direct_dependencies(package_json: Path | None) -> list[str]:
    """The package names the app depends on (``dependencies``, ``optionalDependencies``),
    in their order; [] when the file is missing, too big or not an npm manifest."""
    try:
        if package_json is None:
            return []
        with package_json.open("rb") as stream:
            data = json.loads(stream.read(MAX_PACKAGE_JSON_BYTES + 1)[:MAX_PACKAGE_JSON_BYTES])
    except (OSError, ValueError):
        return []
    names: list[str] = []
    for key in ("dependencies", "optionalDependencies"):
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict):
            names += [n for n in section if _NAME.fullmatch(n) and n not in names]
    return names[:MAX_ROOTS]
