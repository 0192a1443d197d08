"""A Node.js process that has started and waits for the release it will run (a standby).

The supervisor of a standby (:mod:`aether.worker.runtimes.shim`) starts ``node <bootstrap>``
in the app's sandbox, as the app's uid, with the app's environment minus the values of one
deployment (:mod:`aether.worker.runtimes.standby` decides which). The bootstrap deletes its
own file, says ``ready`` on a socket (the only descriptor it gets beyond the standard ones)
and blocks reading it. On activation it receives the release's environment, folder and entry
file, makes ``process.env``, the working directory and ``process.argv`` exactly those of a
cold start of ``node <file> [args]``, acknowledges, closes the socket and runs the entry
through ``require('module').runMain()`` — the function ``node <file>`` itself ends in, so
``require.main``, ES modules and ``process.execArgv`` (empty: ``child_process.fork``
children start as usual) are what they would be. Standard library only: the supervisor
imports this.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aether.worker.runtimes import aheadnode

BOOTSTRAP_NAME = ".aether-standby.js"
READY_SECS = 30.0  # for Node.js to start (a loaded host; the standby is off the deploy path)
ACK_SECS = 10.0  # a blocked Node.js answers in milliseconds; a loaded host may take longer
GIST_CHARS = 300  # of what a standby's Node.js printed before it ended, in an event
_ERROR_LINE = re.compile(r"^\w*Error( \[\w+\])?: ")

# The bootstrap: plain CommonJS, no module of the app is loaded before the activation
# (followed by the walk that resolves ahead, :data:`aheadnode.WALK`).
BOOTSTRAP = r"""'use strict';
const FD = __FD__;
const PLAN = __PLAN__;
const WARNED = __WARNED__;
const fs = require('fs');
try { fs.unlinkSync(__filename); } catch {}
delete require.cache[__filename];
fs.writeSync(FD, 'ready\n');
const warned = PLAN ? resolveAhead(PLAN) : '';  // (an activation meanwhile waits in the socket)
const chunks = [];
const buffer = Buffer.alloc(65536);
for (;;) {
  const n = fs.readSync(FD, buffer, 0, buffer.length, null);
  if (n === 0) process.exit(0);  // the supervisor went: nothing to run
  chunks.push(Buffer.from(buffer.subarray(0, n)));
  if (buffer[n - 1] === 10) break;
}
if (warned) {
  fs.writeSync(FD, `declined ${WARNED}: ${warned}\n`);
  process.exit(0);
}
const message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
for (const name of Object.keys(process.env)) delete process.env[name];
Object.assign(process.env, message.env);
process.chdir(message.cwd);
process.argv = [process.execPath, require('path').resolve(message.cwd, message.main),
  ...message.args];
fs.writeSync(FD, 'ok\n');
fs.closeSync(FD);
setImmediate(require('module').runMain);  // (no frame of this file in the app's stacks)
"""


def write_bootstrap(
    scratch: Path, fd: int, uid: int | None, plan: dict[str, object] | None = None
) -> Path:
    """The bootstrap in the standby's scratch folder (the app's uid owns it, so the
    bootstrap can delete it once Node.js has read it); ``plan``: what it resolves ahead
    (:func:`aether.worker.runtimes.aheadnode.plan`)."""
    path = scratch / BOOTSTRAP_NAME
    text = (BOOTSTRAP + aheadnode.WALK).replace("__WARNED__", json.dumps(aheadnode.WARNED))
    text = text.replace("__FD__", str(fd)).replace("__PLAN__", json.dumps(plan))  # (PLAN last)
    path.write_text(text, encoding="utf-8")
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def activation(env: dict[str, str], cwd: str, entry: list[str]) -> bytes:
    """What the bootstrap reads: one line of JSON. The environment is the one Node.js gets
    from ``sh -c 'exec node …'`` in a cold start: ``sh`` sets ``PWD``."""
    main, *args = entry
    env = {**env, "PWD": cwd}
    return json.dumps({"env": env, "cwd": cwd, "main": main, "args": args}).encode() + b"\n"


def read_line(sock: socket.socket, deadline: float) -> str:
    """One line from the bootstrap ('' when it closed the socket or the deadline passed)."""
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        sock.settimeout(left)
        try:
            chunk = sock.recv(64)
        except OSError:
            return ""
        if not chunk:
            return ""
        data += chunk
    return data.decode(errors="replace").strip()


def hand_over(sock: socket.socket, message: bytes) -> str | None:
    """Send the activation and wait for the bootstrap's acknowledgement; the failure, or
    None. What the socket's buffer takes at once is written at once (all of it, unless the
    environment is huge); the rest from a thread, as the bootstrap may not read it while the
    app's output pipes are not read yet. (A thread for all of it cost ~2.5 ms more on a busy
    host: docs/benchmarks.md.)"""
    failed: list[str] = []
    sent = _send_at_once(sock, message, failed)

    def send() -> None:
        try:
            sock.sendall(message[sent:])
        except OSError as exc:
            failed.append(str(exc))

    sock.settimeout(ACK_SECS)
    writer = threading.Thread(target=send, daemon=True) if sent < len(message) else None
    if writer is not None:
        writer.start()
    answer = read_line(sock, time.monotonic() + ACK_SECS)
    if writer is not None:
        writer.join(ACK_SECS)
    if answer == "ok":
        return None
    if answer.startswith("declined "):  # (it resolved ahead and something warned)
        return answer.removeprefix("declined ")
    if failed:  # (its end of the socket closed: it died while it waited)
        return f"the waiting Node.js process is gone ({failed[0]})"
    return f"the waiting Node.js process answered {answer or 'nothing'}"


def _send_at_once(sock: socket.socket, message: bytes, failed: list[str]) -> int:
    """How much of ``message`` the socket took without waiting (all of it when it failed:
    the failure is in ``failed``, nothing more is to be sent)."""
    sock.setblocking(False)
    try:
        return sock.send(message)
    except BlockingIOError:
        return 0
    except OSError as exc:
        failed.append(str(exc))
        return len(message)


def wait_for_activation(stdin_fd: int, data: bytes, alive: Callable[[], bool]) -> str:
    """Block until the worker sends the activation line on ``stdin_fd`` (``data``: what was
    read of it already); '' when it closed the pipe (the standby is not needed) or
    ``alive()`` turned false (Node.js ended, or the supervisor was told to stop)."""
    selector = selectors.DefaultSelector()
    selector.register(stdin_fd, selectors.EVENT_READ)
    try:
        while alive():
            if data.endswith(b"\n"):
                return data.decode()
            if not selector.select(0.2):
                continue
            chunk = os.read(stdin_fd, 1 << 16)
            if not chunk:
                return ""
            data += chunk
        return ""
    finally:
        selector.close()


def gist(output: bytes) -> str:
    """The line of what Node.js printed that says what went wrong: its first ``…Error: …``
    line, else its last line but the version Node.js prints as it exits; printable and
    short, as it ends up in a deployment's event."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    others = [line for line in lines if line and not line.startswith("Node.js v")]
    chosen = (errors[:1] or others[-1:] or [""])[0]
    text = "".join(c if c.isprintable() else "?" for c in chosen)
    return text if len(text) <= GIST_CHARS else text[: GIST_CHARS - 1] + "…"
