"""Open a page in headless Chromium and record what it did, through the DevTools protocol over a pipe.

`--remote-debugging-pipe` makes Chromium read protocol commands from file descriptor 3 and write
replies and events to descriptor 4, as NUL-terminated JSON: no port, no websocket client, no
dependency, nothing for another process on the machine to connect to. `visit(path)` opens one page
with the Runtime, Log, Network and Page domains enabled, waits for its load event, and returns a
`Visit`: the console messages and exceptions, the log entries (a Content-Security-Policy violation
is one), every network request the page made (data: URLs included, so a caller can tell them from
the rest), the result of JavaScript expressions evaluated afterwards, and a PNG screenshot.

Chromium runs with a resolver that maps every host to "not found" and a proxy on a closed loopback
port, so even a request that slipped through could reach nothing; the Network events still show
that it was attempted. `--no-sandbox` because the tests run as root (CI does).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Visit", "chromium_binary", "visit"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Visit:
    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled params
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown params
    log: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded entries
    requests: list[str] = field(default_factory=list)  # URL of every Network.requestWillBeSent
    values: dict[str, Any] = field(default_factory=dict)  # expression -> value
    screenshot: bytes = b""

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error-level log entries, as text."""
        out = [" ".join(str(a.get("value", a.get("description", ""))) for a in c.get("args", []))
               for c in self.console if c.get("type") in ("error", "assert")]
        out += [str(e.get("exceptionDetails", {}).get("text")) for e in self.exceptions]
        out += [f"{e.get('source')}: {e.get('text')}" for e in self.log if e.get("level") == "error"]
        return out


class _Pipe:
    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.w, self.r = to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self.next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        return self._wait(lambda m: m.get("method") == method, timeout, keep=False)

    def drain(self, seconds: float) -> None:
        """Read events for `seconds` (late console messages, requests)."""
        with contextlib.suppress(TimeoutError):
            self._wait(lambda m: False, seconds)

    def _wait(self, want: Any, timeout: float, keep: bool = True) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if want(m):
                    return m  # type: ignore[no-any-return]
                if "method" in m:
                    self.events.append(m)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe (did it start?)")
                self.buf += chunk


def _high_fd(fd: int) -> int:
    """A copy of `fd` numbered 10 or above, so that placing the pipe on 3 and 4 in the child cannot
    overwrite the other end."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def visit(page: Path, expressions: tuple[str, ...] = (), *, width: int = 1280, height: int = 2000,
          timeout: float = 60.0) -> Visit:
    """Open `page` (a local file) in headless Chromium and return what happened (see the module)."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    cmd_r, cmd_w = (_high_fd(fd) for fd in os.pipe())
    ev_r, ev_w = (_high_fd(fd) for fd in os.pipe())

    def place_pipe() -> None:  # in the child, before exec: fd 3 reads commands, fd 4 writes replies
        os.dup2(cmd_r, 3)
        os.dup2(ev_w, 4)

    profile = tempfile.mkdtemp(prefix="intransit-chromium-")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            f"--window-size={width},{height}", "about:blank"]
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            close_fds=False, preexec_fn=place_pipe, env=env)  # Python's own fds are
    # not inheritable (PEP 446): only 0-2 and the 3 and 4 placed by place_pipe reach Chromium
    os.close(cmd_r)
    os.close(ev_w)
    pipe = _Pipe(cmd_w, ev_r)
    out = Visit()
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.events.clear()
        pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired", timeout)
        pipe.drain(0.5)
        for expr in expressions:
            got = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
            out.values[expr] = got.get("result", {}).get("value")
        shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=timeout)
        out.screenshot = base64.b64decode(shot["data"])
        pipe.drain(0.2)
        for m in pipe.events:
            params = m.get("params", {})
            if m.get("sessionId") != session:
                continue
            if m["method"] == "Runtime.consoleAPICalled":
                out.console.append(params)
            elif m["method"] == "Runtime.exceptionThrown":
                out.exceptions.append(params)
            elif m["method"] == "Log.entryAdded":
                out.log.append(params.get("entry", {}))
            elif m["method"] == "Network.requestWillBeSent":
                out.requests.append(params.get("request", {}).get("url", ""))
        with contextlib.suppress(RuntimeError, TimeoutError):
            pipe.send("Browser.close", timeout=10)
    finally:
        os.close(cmd_w)
        os.close(ev_r)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return out
