#!/usr/bin/env python3
"""burn.py -- run a command while N busy processes keep N cores busy.

    tests/lib/burn.py N -- command [args...]

Starts N processes that spin on the CPU (at the tests' own priority), runs the
command with ZOS_LOAD=N in its environment, then stops every burner by its PID
(SIGKILL) whatever happened: a failing command, SIGINT or SIGTERM.  Each burner
also checks now and then that its parent is still burn.py and exits when it is
not, so even a SIGKILLed burn.py leaves nothing spinning.  The exit status is
the command's (128+N when a signal N stopped it).

tests/run-all.sh runs under it when LOAD=N is set (`LOAD=2 make test`): a test
that passes alone and fails here depends on timing, which no test may.
"""
import os
import signal
import subprocess
import sys

# Spins until its parent (burn.py) is gone; the check costs nothing next to the loop.
SPIN = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(200000): pass\n"


def usage():
    sys.stderr.write("usage: burn.py N -- command [args...]  (N busy processes, N >= 0)\n")
    return 2


def main(argv):
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        return usage()
    n, command = int(argv[0]), argv[2:]
    burners, child = [], None

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for _ in range(n):
            burners.append(subprocess.Popen([sys.executable, "-c", SPIN],
                                            stdin=subprocess.DEVNULL))
        sys.stderr.write("burn.py: %d busy process(es): %s\n"
                         % (n, " ".join(str(b.pid) for b in burners)))
        child = subprocess.Popen(command, env=dict(os.environ, ZOS_LOAD=str(n)))
        rc = child.wait()
        return rc if rc >= 0 else 128 - rc
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if child is not None and child.poll() is None:  # interrupted: stop the command too
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for b in burners:
            b.kill()
            b.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
