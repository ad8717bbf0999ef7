"""Run a program with a pseudo-terminal as its controlling terminal and
answer its passphrase prompts.

Stock `age` reads passphrases only from /dev/tty, never from stdin, so a
test cannot pipe one in. run() starts the program in a new session whose
controlling terminal is the slave side of a fresh pty; stdin, stdout and
stderr stay ordinary files, so binary data never passes through the
terminal's line discipline. Each time the text written to the terminal
since the last answer ends in a prompt, the next answer is typed.
"""
import fcntl
import os
import re
import select
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass

PROMPT = re.compile(rb"(?i)passphrase[^\n]*:\s*$")


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes
    tty: bytes        # everything the program wrote to the terminal
    answered: int     # how many answers were typed


def _controlling_tty(slave_fd):
    def setup():
        os.setsid()
        fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    return setup


def _pump(master, proc, answers, deadline, prompt):
    """Read the terminal until the program exits; type answers at prompts."""
    tty, pending, answered = b"", b"", 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"{proc.args!r} timed out; tty: {tty!r}")
        ready, _, _ = select.select([master], [], [], min(left, 0.2))
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every slave descriptor is closed
                data = b""
            if not data and proc.poll() is not None:
                break
            tty += data
            pending += data
            if answered < len(answers) and prompt.search(pending):
                os.write(master, answers[answered].encode() + b"\n")
                answered += 1
                pending = b""
        elif proc.poll() is not None:
            break
    return tty, answered


def run(argv, answers=(), stdin=b"", timeout=120, env=None, prompt=PROMPT):
    """Run argv with `stdin` (bytes) as its standard input and a pty as its
    controlling terminal, typing answers[i] at the i-th prompt. Returns a
    Result; never raises on a non-zero exit (TimeoutError on a hang)."""
    master, slave = os.openpty()
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
            tempfile.TemporaryFile() as ferr:
        fin.write(stdin)
        fin.seek(0)
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv], stdin=fin, stdout=fout, stderr=ferr,
                pass_fds=(slave,), preexec_fn=_controlling_tty(slave),
                env=env)
        finally:
            os.close(slave)
        try:
            tty, answered = _pump(master, proc, list(answers),
                                  time.monotonic() + timeout, prompt)
        finally:
            os.close(master)
        rc = proc.wait()
        fout.seek(0)
        ferr.seek(0)
        return Result(rc, fout.read(), ferr.read(), tty, answered)
