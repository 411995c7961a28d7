#!/usr/bin/env python3
"""Drive the real `telnet` client through a pseudo-terminal for captures/make_net_captures.sh: wait
for each prompt, type the answer, as a person would. Usage: net_telnet_client.py HOST PORT
[answer-for-prompt ...] where each argument is `PROMPT=ANSWER` (PROMPT a substring of the server's
text to wait for)."""

import os
import pty
import select
import sys
import time


def main() -> int:
    host, port, *steps = sys.argv[1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("telnet", ["telnet", host, port])
    seen = b""
    deadline = time.monotonic() + 20
    for step in steps:
        prompt, _, answer = step.partition("=")
        while prompt.encode() not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    return 1
        if prompt.encode() not in seen:
            print(f"prompt {prompt!r} never came", file=sys.stderr)
            return 1
        seen = seen[seen.index(prompt.encode()) + len(prompt):]
        time.sleep(0.2)
        for ch in answer:  # one key at a time, like a person in character mode
            os.write(fd, ch.encode())
            time.sleep(0.02)
        os.write(fd, b"\r")
    time.sleep(1.0)
    os.kill(pid, 15)
    os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
