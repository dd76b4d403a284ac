#!/usr/bin/python3
"""switchmail beside msmtp and esmtp, on 127.0.0.1 (tests/bench/README.md).

    /usr/bin/python3 tests/bench/bench.py SWITCHMAIL SINK

SWITCHMAIL is the built binary, SINK the built tests/bench/sink.c; `make bench`
builds both and passes them.  Standard library only.  Everything happens under
one temporary directory (removed at the end unless BENCH_KEEP=1) and on
127.0.0.1: a throwaway CA and server certificate made with the openssl CLI,
one sink process with a plain, a STARTTLS and an implicit-TLS listener (and a
second one whose STARTTLS listener sends no TLS 1.3 session tickets, for
esmtp when it hangs on them), and the clients' configuration files.

Measurements, each interleaved A/B (the clients take turns, in rotating
order, so load drift hits all of them alike):
  1. per message: a 2 KB message with -t -i, BENCH_SENDS sends per client
     and mode (plain, STARTTLS + AUTH, implicit TLS + AUTH): wall and CPU
     (user + sys from wait4) of each invocation; then, for information,
     BENCH_SENDS_BUNDLE STARTTLS sends with switchmail's TLS session cache
     off (full handshakes), and as many trusting the system CA store.  The
     sink records whether each message came over a resumed TLS session, and
     the TLS cells say how many did (switchmail resumes across invocations,
     msmtp and esmtp do not);
  2. one BENCH_BIG_MB message (plain), BENCH_BIG_ROUNDS rounds: wall, CPU,
     peak RSS (/usr/bin/time %M);
  3. a backlog of BENCH_BACKLOG messages queued with `switchmail -odq`, then
     flushed by one `switchmail -q`, against BENCH_BACKLOG_MSMTP sequential
     msmtp invocations (half before the flush, half after);
  4. bursts of BENCH_BURST concurrent invocations, BENCH_BURST_ROUNDS rounds.
Every message has a unique Subject; the sink records the Subject of every
message it accepts (with "plain", "tls full" or "tls resumed"), and each
phase checks that every send that exited 0 was received exactly once.  The
table goes to stdout and to BENCH_OUT (default tests/bench/results.md).
Exit status 0 unless something broke (a lost or duplicated message, a
switchmail failure, a setup error); a missed target is information, not a
failure.
"""

from __future__ import annotations

import collections
import datetime
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MSMTP = shutil.which("msmtp") or "/usr/bin/msmtp"
ESMTP = shutil.which("esmtp") or "/usr/bin/esmtp"
GNU_TIME = "/usr/bin/time"
SENDER = "bench@example.org"
RCPT = "rcpt@example.org"
USER, PASSWORD = "bench-user@example.org", "bench-secret"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        sys.exit(f"bench: {name}={value!r} is not an integer")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        sys.exit(f"bench: {name}={value!r} is not a number")


SETTINGS = {
    "BENCH_SENDS": env_int("BENCH_SENDS", 300),
    "BENCH_SENDS_BUNDLE": env_int("BENCH_SENDS_BUNDLE", 100),
    "BENCH_BIG_MB": env_int("BENCH_BIG_MB", 100),
    "BENCH_BIG_ROUNDS": env_int("BENCH_BIG_ROUNDS", 3),
    "BENCH_BACKLOG": env_int("BENCH_BACKLOG", 5000),
    "BENCH_BACKLOG_MSMTP": env_int("BENCH_BACKLOG_MSMTP", 500),
    "BENCH_BURST": env_int("BENCH_BURST", 200),
    "BENCH_BURST_ROUNDS": env_int("BENCH_BURST_ROUNDS", 3),
    "BENCH_ESMTP": env_int("BENCH_ESMTP", 1),
    "BENCH_ESMTP_TIMEOUT": env_float("BENCH_ESMTP_TIMEOUT", 2.0),
    "BENCH_ESMTP_MAX_HANGS": env_int("BENCH_ESMTP_MAX_HANGS", 10),
    "BENCH_TLS_TICKETS": env_int("BENCH_TLS_TICKETS", 1),
}
OUT = Path(os.environ.get("BENCH_OUT") or HERE / "results.md")
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")
RUN_ID = f"{os.getpid()}.{int(time.time())}"

MODES = ("plain", "starttls", "smtps")
# "full": STARTTLS + AUTH as "starttls", but switchmail with
# `tls_session_cache = false;`, so that every send makes a full TLS handshake
# as msmtp's and esmtp's do; shown for information beside the "starttls" row,
# where switchmail's sends after the first resume the session it kept.
# "bundle": STARTTLS + AUTH again, but each client trusting the system CA
# store as it reads it in a real deployment (plus the test CA); not one of the
# issue's three modes, shown for information.  switchmail: no tls_ca_file,
# SSL_CERT_DIR pointing at a copy of /etc/ssl/certs's hashed links plus the
# test CA; msmtp: tls_trust_file = Debian's bundle plus the test CA (what
# `tls_trust_file system` parses through GnuTLS).
PM_MODES = MODES + ("full", "bundle")
INFO_MODES = ("full", "bundle")         # BENCH_SENDS_BUNDLE sends; no targets
TLS_MODES = ("starttls", "smtps", "full", "bundle")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SYSTEM_CERT_DIR = Path("/etc/ssl/certs")
MODE_TITLE = {"plain": "plain", "starttls": "STARTTLS + AUTH",
              "smtps": "implicit TLS + AUTH",
              "bundle": "STARTTLS + AUTH, system CA store",
              "full": "STARTTLS + AUTH, full handshakes (switchmail's session cache off)"}
PORT_OF = {"plain": "plain", "starttls": "starttls", "smtps": "smtps", "bundle": "starttls",
           "full": "starttls"}
# switchmail's session cache is on by default: in these modes every counted
# send (the warm-up made the first, full, handshake) should be resumed.
SW_RESUMES = ("starttls", "smtps", "bundle")


class Broken(Exception):
    """Something that makes the benchmark's figures meaningless."""


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Running one client: posix_spawn (vfork + exec, so the child starts without
# a copy of this interpreter), stdin from a file, wait4 for CPU time.


class Run:
    __slots__ = ("tool", "rc", "wall", "cpu", "hung", "subject", "rss_kb")

    def __init__(self, tool, rc, wall, cpu, hung, subject, rss_kb=0):
        self.tool, self.rc, self.wall, self.cpu = tool, rc, wall, cpu
        self.hung, self.subject, self.rss_kb = hung, subject, rss_kb


def spawn(argv, stdin_path, stderr_fd, env):
    """Starts argv with stdin_path on fd 0, /dev/null on 1, stderr_fd on 2."""
    fd = os.open(stdin_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, fd, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, stderr_fd, 2)])
    finally:
        os.close(fd)


class Reaper:
    """Waits for children we started, killing (by PID) those still running
    at the deadline.  A child is only reaped after waitid(WNOWAIT) saw it
    exit and it left `running`, so the alarm handler can never signal a PID
    that has been reaped (and perhaps reused)."""

    def __init__(self, pids, timeout):
        self.running = set(pids)
        self.killed = set()
        self.timeout = timeout

    def _alarm(self, signum, frame):
        for pid in list(self.running):
            try:
                os.kill(pid, signal.SIGKILL)
                self.killed.add(pid)
            except ProcessLookupError:
                pass

    def wait(self, pid):
        """(exit code or -signal, rusage, end time) of one of the pids."""
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        end = time.perf_counter()
        self.running.discard(pid)
        _, status, ru = os.wait4(pid, 0)
        return os.waitstatus_to_exitcode(status), ru, end

    def wait_any(self):
        """(pid, exit code) of the next of our pids to exit.  Any other child
        of ours (the sink) exiting is a breakage."""
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        if info.si_pid not in self.running:
            raise Broken(f"process {info.si_pid} (the sink?) exited during the run")
        self.running.discard(info.si_pid)
        _, status = os.waitpid(info.si_pid, 0)
        return info.si_pid, os.waitstatus_to_exitcode(status)

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)
        for pid in list(self.running):     # only after an exception
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.running.discard(pid)
        return False


def run_one(tool, argv, stdin_path, stderr_fd, env, subject, timeout):
    start = time.perf_counter()
    pid = spawn(argv, stdin_path, stderr_fd, env)
    with Reaper([pid], timeout) as reaper:
        rc, ru, end = reaper.wait(pid)
    return Run(tool, rc, end - start, ru.ru_utime + ru.ru_stime,
               pid in reaper.killed, subject)


# --------------------------------------------------------------------------
# Messages


def message_2k(subject: str) -> bytes:
    """A 2048-byte message, LF line endings as a sendmail caller writes it."""
    head = (f"From: Bench <{SENDER}>\nTo: {RCPT}\nSubject: {subject}\n"
            f"Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
            f"Message-ID: <{subject.replace(' ', '.')}@bench.invalid>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
    line = "The quick brown fox jumps over the lazy dog, 0123456789 times.\n"
    body = line * ((2048 - len(head)) // len(line) + 1)
    text = (head + body)[:2047] + "\n"
    assert len(text) == 2048
    return text.encode()


SUBJECT_WIDTH = 64


def write_big(path: Path, megabytes: int) -> int:
    """Writes a message of about `megabytes` MiB with 76-octet lines; returns
    the offset of its Subject, SUBJECT_WIDTH octets that set_subject()
    overwrites in place, so each run sends a unique message without writing
    the whole file (and its page-cache writeback) again."""
    head = (f"From: Bench <{SENDER}>\nTo: {RCPT}\n").encode()
    rest = b"\nDate: Mon, 01 Jan 2024 00:00:00 +0000\n\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+_=.,;:!?\n"
    block = line * ((1 << 20) // len(line) + 1)
    with open(path, "wb") as f:
        f.write(head + b"Subject: ")
        offset = f.tell()
        f.write(b" " * SUBJECT_WIDTH + rest)
        left = (megabytes << 20) - f.tell()
        while left > 0:
            chunk = block[:left]
            f.write(chunk)
            left -= len(chunk)
        f.write(b"last line\n")
    return offset


def set_subject(path: Path, offset: int, subject: str) -> None:
    data = subject.encode().ljust(SUBJECT_WIDTH)
    assert len(data) == SUBJECT_WIDTH
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# The world: certificates, sink, configurations


class World:
    def __init__(self, switchmail: str, sink: str):
        self.switchmail = switchmail
        self.sink_bin = sink
        self.dir = Path(tempfile.mkdtemp(prefix="switchmail-bench."))
        self.home = self.dir / "home"
        self.subjects = self.dir / "subjects.txt"
        self.sink = None
        self.sinks = []
        self.ports = {}
        self.received_offset = 0
        self.counts = collections.Counter()
        self.tls = {}           # Subject -> "plain", "tls full" or "tls resumed"
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home),
                    "LC_ALL": "C", "TZ": "UTC"}
        self.errfiles = {}
        self.notes = []
        self.phases = []
        self.load = []

    # -- setup
    def start(self):
        # A private copy: a rebuild of build/switchmail during the run (by
        # someone else's `make`) must not swap binaries under the benchmark.
        copy = self.dir / "switchmail"
        shutil.copy2(self.switchmail, copy)
        self.switchmail = str(copy)
        self.make_pki()
        self.start_sink()
        self.write_configs()

    def make_pki(self):
        pki = self.dir / "pki"
        pki.mkdir()
        ca, ca_key = pki / "ca.pem", pki / "ca.key"
        csr, ext = pki / "server.csr", pki / "ext.cnf"
        self.cert, self.key, self.ca = pki / "server.pem", pki / "server.key", ca
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                       "basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for argv in (
                ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca,
                 "-days", "2", "-subj", "/CN=switchmail bench CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                ["openssl", "req", "-new", *ec, "-keyout", self.key, "-out", csr,
                 "-subj", "/CN=localhost"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                 "-CAcreateserial", "-days", "2", "-out", self.cert, "-extfile", ext]):
            r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
            if r.returncode:
                raise Broken(f"openssl failed: {' '.join(map(str, argv))}\n{r.stderr}")

    def start_sink(self):
        """The sink; and, for esmtp's sake, a second one whose STARTTLS
        listener sends no TLS 1.3 session tickets (see per_message)."""
        argv = [self.sink_bin, "-p", "0", "-s", "0", "-S", "0", "-c", str(self.cert),
                "-k", str(self.key), "-r", str(self.subjects)]
        if not SETTINGS["BENCH_TLS_TICKETS"]:
            argv.append("-n")
        self.sink_err = open(self.dir / "sink.err", "wb")
        self.sink, self.ports = self.one_sink(argv)
        self.sinks = [(self.sink, self.ports["plain"])]
        if SETTINGS["BENCH_TLS_TICKETS"] and SETTINGS["BENCH_ESMTP"]:
            argv = [self.sink_bin, "-p", "0", "-s", "0", "-c", str(self.cert),
                    "-k", str(self.key), "-r", str(self.subjects), "-n"]
            sink2, ports2 = self.one_sink(argv)
            self.sinks.append((sink2, ports2["plain"]))
            self.ports["starttls-nt"] = ports2["starttls"]

    def one_sink(self, argv):
        sink = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.sink_err,
                                stdin=subprocess.DEVNULL)
        line = sink.stdout.readline().decode()
        try:
            fields = dict(kv.split("=") for kv in line.split())
            return sink, {k: int(fields[k]) for k in ("plain", "starttls", "smtps")}
        except (ValueError, KeyError):
            raise Broken(f"the sink did not start: {line!r}")

    def write_secret(self, path: Path, text: str):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def trust(self, mode: str) -> Path:
        return self.bundle if mode == "bundle" else self.ca

    def switchmail_conf(self, name: str, mode: str) -> Path:
        enc = {"plain": "none", "starttls": "tls", "smtps": "ssl", "bundle": "tls",
               "full": "tls"}[mode]
        queue = self.dir / f"queue-{name}"
        queue.mkdir()
        lines = [f'host = "127.0.0.1"; port = {self.ports[PORT_OF[mode]]}; '
                 f'encryption = "{enc}";', f'from = "{SENDER}";']
        if mode == "bundle":
            lines.append(f'username = "{USER}"; password = "{PASSWORD}";')
        elif mode != "plain":
            lines.append(f'tls_ca_file = "{self.ca}"; username = "{USER}"; '
                         f'password = "{PASSWORD}";')
        if mode == "full":
            lines.append("tls_session_cache = false;")
        text = ("native = {\n  " + "\n  ".join(lines) + "\n};\n"
                f'queue = {{ dir = "{queue}"; }};\nlog = {{ syslog = false; }};\n')
        path = self.dir / f"switchmail-{name}.conf"
        self.write_secret(path, text)
        return path

    def write_configs(self):
        self.home.mkdir(mode=0o700)
        self.bundle = self.dir / "pki" / "bundle.pem"
        system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
        self.bundle.write_bytes(system + self.ca.read_bytes())
        self.bundle_certs = self.bundle.read_bytes().count(b"-----BEGIN CERTIFICATE-----")
        self.make_cert_dir()
        self.sw_conf = {m: self.switchmail_conf(m, m) for m in PM_MODES}
        self.sw_queue = {m: self.dir / f"queue-{m}" for m in PM_MODES}
        self.sw_conf["backlog"] = self.switchmail_conf("backlog", "plain")
        self.sw_queue["backlog"] = self.dir / "queue-backlog"
        self.msmtp_rc = {}
        for mode in PM_MODES:
            text = (f"account default\nhost 127.0.0.1\nport {self.ports[PORT_OF[mode]]}\n"
                    f"from {SENDER}\nsyslog off\n")
            if mode == "plain":
                text += "auth off\ntls off\n"
            else:
                text += (f"auth on\nuser {USER}\npassword {PASSWORD}\ntls on\n"
                         f"tls_starttls {'off' if mode == 'smtps' else 'on'}\n"
                         f"tls_trust_file {self.trust(mode)}\n")
            path = self.dir / f"msmtprc-{mode}"
            self.write_secret(path, text)
            self.msmtp_rc[mode] = path
        # esmtp (libESMTP): STARTTLS only; the CA in libESMTP's fixed place
        # (XDG layout, owner-only modes); the name checked is the host name
        # given, and libESMTP matches no IP SANs, so "localhost" (from
        # /etc/hosts, no DNS) for STARTTLS.
        cfg = self.home / ".config" / "libesmtp"
        cfg.mkdir(parents=True, mode=0o700)
        os.chmod(self.home / ".config", 0o700)
        shutil.copy(self.ca, cfg / "ca.pem")
        os.chmod(cfg / "ca.pem", 0o600)
        self.esmtp_rc = {}
        self.write_secret(self.dir / "esmtprc-plain",
                          f"hostname = 127.0.0.1:{self.ports['plain']}\nstarttls = disabled\n")
        self.write_secret(self.dir / "esmtprc-starttls",
                          f"hostname = localhost:{self.ports['starttls']}\n"
                          f'username = "{USER}"\npassword = "{PASSWORD}"\nstarttls = required\n')
        self.esmtp_rc = {"plain": self.dir / "esmtprc-plain",
                         "starttls": self.dir / "esmtprc-starttls"}
        if "starttls-nt" in self.ports:
            self.write_secret(self.dir / "esmtprc-starttls-nt",
                              f"hostname = localhost:{self.ports['starttls-nt']}\n"
                              f'username = "{USER}"\npassword = "{PASSWORD}"\n'
                              "starttls = required\n")
            self.esmtp_rc["starttls-nt"] = self.dir / "esmtprc-starttls-nt"

    def make_cert_dir(self):
        """A hashed CA directory as /etc/ssl/certs is (OpenSSL's lazy
        lookup), linking to its certificates, plus the test CA."""
        self.cert_dir = self.dir / "pki" / "certs"
        self.cert_dir.mkdir()
        if SYSTEM_CERT_DIR.is_dir():
            for name in os.listdir(SYSTEM_CERT_DIR):
                stem, _, n = name.partition(".")
                if len(stem) == 8 and n.isdigit() and all(c in "0123456789abcdef" for c in stem):
                    os.symlink(os.path.realpath(SYSTEM_CERT_DIR / name), self.cert_dir / name)
        r = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(self.ca)],
                           capture_output=True, text=True)
        digest = r.stdout.strip()
        if r.returncode or len(digest) != 8:
            raise Broken(f"openssl x509 -hash failed: {r.stderr}")
        k = 0
        while (self.cert_dir / f"{digest}.{k}").exists():
            k += 1
        shutil.copy(self.ca, self.cert_dir / f"{digest}.{k}")

    def env_for(self, tool: str, mode: str) -> dict:
        if tool == "switchmail" and mode == "bundle":
            return dict(self.env, SSL_CERT_DIR=str(self.cert_dir))
        return self.env

    # -- clients
    def argv(self, tool: str, mode: str, extra=()):
        if tool == "switchmail":
            return [self.switchmail, "-C", str(self.sw_conf[mode]), *extra, "-t", "-i"]
        if tool == "msmtp":
            return [MSMTP, "-C", str(self.msmtp_rc[mode]), "-t", "-i"]
        if tool == "esmtp":
            return [ESMTP, "-C", str(self.esmtp_rc[mode]), "-f", SENDER, "-t", "-i"]
        raise ValueError(tool)

    def errfd(self, tool: str) -> int:
        if tool not in self.errfiles:
            self.errfiles[tool] = os.open(self.dir / f"{tool}.stderr",
                                          os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                                          0o600)
        return self.errfiles[tool]

    def stderr_tail(self, tool: str, lines: int = 5) -> str:
        path = self.dir / f"{tool}.stderr"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- what the sink received
    def received(self) -> collections.Counter:
        """Counter of every Subject the sink recorded so far; self.tls gets
        how each came (the field after the last TAB of the sink's line)."""
        with open(self.subjects, "rb") as f:
            f.seek(self.received_offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.received_offset += cut
        for line in data[:cut].decode(errors="replace").splitlines():
            subject, tab, how = line.rpartition("\t")
            if not tab:
                subject, how = line, "?"
            self.counts[subject] += 1
            self.tls[subject] = how
        return self.counts

    def xstat(self):
        """(messages, bytes) the sinks accepted so far."""
        messages = octets = 0
        for _, port in self.sinks:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"XSTAT\r\n")
                parts = f.readline().split()
                s.sendall(b"QUIT\r\n")
                f.readline()
            messages += int(parts[1])
            octets += int(parts[2])
        return messages, octets

    def queued(self, mode: str) -> int:
        new = self.sw_queue[mode] / "new"
        return len(os.listdir(new)) if new.is_dir() else 0

    # -- teardown
    def stop(self):
        for fd in self.errfiles.values():
            os.close(fd)
        self.errfiles = {}
        for sink, _ in self.sinks:
            if sink.poll() is None:
                os.kill(sink.pid, signal.SIGTERM)
                try:
                    sink.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(sink.pid, signal.SIGKILL)
                    sink.wait()
            sink.stdout.close()
        if self.sinks:
            self.sink_err.close()
        if KEEP:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def check_delivery(world: World, runs, what: str, problems: list, queue_modes=()):
    """Every run that exited 0 must have been received exactly once (or be
    waiting in switchmail's queue: queued is not lost).  Returns the number
    of such runs received exactly once."""
    deadline = time.time() + 10
    while True:
        counts = world.received()
        missing = [r for r in runs if r.rc == 0 and not r.hung and counts[r.subject] == 0]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.1)
    dups = [r for r in runs if counts[r.subject] > 1]
    waiting = sum(world.queued(m) for m in queue_modes)
    if dups:
        problems.append(f"{what}: {len(dups)} message(s) delivered more than once "
                        f"(e.g. {dups[0].subject!r} by {dups[0].tool})")
    if missing:
        if len(missing) > waiting:
            problems.append(f"{what}: {len(missing) - waiting} message(s) lost: exit 0 "
                            f"but never received (e.g. {missing[0].subject!r} by "
                            f"{missing[0].tool})")
        else:
            log(f"{what}: {len(missing)} message(s) deferred to the queue (not lost)")
    return sum(1 for r in runs if r.rc == 0 and not r.hung and counts[r.subject] == 1)


# --------------------------------------------------------------------------
# 1. per-message cost


def tools_for(mode: str):
    tools = ["switchmail", "msmtp"]
    if SETTINGS["BENCH_ESMTP"] and mode in ("plain", "starttls") and os.path.exists(ESMTP):
        tools.append("esmtp")
    return tools


def per_message(world: World, problems: list):
    msg = world.dir / "msg-2k.eml"
    results = {}
    for mode in PM_MODES:
        n = SETTINGS["BENCH_SENDS_BUNDLE" if mode in INFO_MODES else "BENCH_SENDS"]
        if n <= 0:
            continue
        tools = tools_for(mode)
        runs = {t: [] for t in tools}
        hangs = {t: 0 for t in tools}
        attempts = {t: 0 for t in tools}
        stopped = set()
        switched = {}       # tool -> (hangs, attempts) when it left the ticket listener
        variant = {t: mode for t in tools}
        log(f"per message, {MODE_TITLE[mode]}: {n} sends each by {', '.join(tools)}")
        for i in range(-1, n):          # i = -1: one warm-up each, not counted
            order = tools[i % len(tools):] + tools[:i % len(tools)] if i >= 0 else tools
            for tool in order:
                if tool in stopped:
                    continue
                subject = f"bench pm {mode} {tool} {i} {RUN_ID}"
                msg.write_bytes(message_2k(subject))
                timeout = SETTINGS["BENCH_ESMTP_TIMEOUT"] if tool == "esmtp" else 60
                r = run_one(tool, world.argv(tool, variant[tool]), msg, world.errfd(tool),
                            world.env_for(tool, mode), subject, timeout)
                if i < 0:
                    if r.rc != 0 and tool != "esmtp":
                        raise Broken(f"{tool} {mode} warm-up exited {r.rc}:\n"
                                     + world.stderr_tail(tool))
                    continue
                attempts[tool] += 1
                if r.hung:
                    hangs[tool] += 1
                    since = hangs[tool] - switched.get(tool, (0, 0))[0]
                    if since < SETTINGS["BENCH_ESMTP_MAX_HANGS"]:
                        pass
                    elif (tool == "esmtp" and mode == "starttls" and tool not in switched
                          and "starttls-nt" in world.esmtp_rc):
                        # libESMTP's hang with TLS 1.3 session tickets: go on
                        # against the sink that sends none, to get figures.
                        switched[tool] = (hangs[tool], attempts[tool])
                        variant[tool] = "starttls-nt"
                    else:
                        stopped.add(tool)
                runs[tool].append(r)
        allruns = [r for rs in runs.values() for r in rs]
        check_delivery(world, allruns, f"per message {mode}", problems,
                       queue_modes=(mode,))
        for tool in tools:
            resumption = tls_resumption(world, mode, tool, runs[tool], problems)
            ok = [r for r in runs[tool] if r.rc == 0 and not r.hung]
            failed = [r for r in runs[tool] if r.rc != 0 and not r.hung]
            if failed:
                note = (f"per message {mode}: {tool} failed {len(failed)} of "
                        f"{attempts[tool]} (exit {failed[0].rc}): "
                        + world.stderr_tail(tool, 2).replace("\n", " | "))
                (problems if tool == "switchmail" else world.notes).append(note)
            results[(mode, tool)] = {
                "wall": [r.wall for r in ok], "cpu": [r.cpu for r in ok],
                "n": attempts[tool], "ok": len(ok), "hung": hangs[tool],
                "stopped": tool in stopped, "switched": switched.get(tool),
                **resumption}
        world.received()
    return results


def tls_resumption(world: World, mode: str, tool: str, runs, problems: list) -> dict:
    """How many of a tool's counted messages (those the sink received) came
    over a resumed TLS session; {} in plain mode.  What does not match
    the text of the report goes to the problems or the notes."""
    if mode not in TLS_MODES:
        return {}
    got = [world.tls.get(r.subject, "?") for r in runs if world.counts[r.subject]]
    resumed, received = got.count("tls resumed"), len(got)
    if tool != "switchmail":
        if resumed:
            world.notes.append(f"per message {mode}: {tool} resumed a TLS session for "
                               f"{resumed} of {received} messages (the report assumes it "
                               "does not across invocations)")
    elif mode == "full" and resumed:
        # The row's title says full handshakes: its figures would be wrong.
        problems.append(f"per message {mode}: switchmail resumed a TLS session for "
                        f"{resumed} of {received} messages with tls_session_cache = false")
    elif mode in SW_RESUMES and resumed < received - 1:
        why = (" (BENCH_TLS_TICKETS=0: the sink sends no TLS 1.3 session tickets, so "
               "there is nothing to resume)" if not SETTINGS["BENCH_TLS_TICKETS"] else "")
        world.notes.append(f"per message {mode}: switchmail resumed a TLS session for "
                           f"{resumed} of {received} messages (expected all, or all but "
                           f"one): its row includes full handshakes{why}")
    return {"resumed": resumed, "tls_received": received}


def startup(world: World):
    """What starting a process costs here, for scale: /bin/true, and each
    client's --version (dynamic linking and library constructors, no work)."""
    n = max(20, min(100, SETTINGS["BENCH_SENDS"] // 3))
    cmds = {"/bin/true": ["/bin/true"],
            "switchmail --version": [world.switchmail, "--version"],
            "msmtp --version": [MSMTP, "--version"]}
    log(f"start-up floor: {n} runs each of {', '.join(cmds)}")
    res = {k: [] for k in cmds}
    for i in range(n):
        for name, argv in cmds.items():
            r = run_one(name, argv, "/dev/null", world.errfd("startup"), world.env, "", 30)
            if r.rc == 0:
                res[name].append(r)
    return {k: {"wall": [r.wall for r in rs], "cpu": [r.cpu for r in rs]}
            for k, rs in res.items()}


# --------------------------------------------------------------------------
# 2. one big message


def big_message(world: World, problems: list):
    mb, rounds = SETTINGS["BENCH_BIG_MB"], SETTINGS["BENCH_BIG_ROUNDS"]
    tools = tools_for("plain")
    log(f"big message: {mb} MB, {rounds} round(s) by {', '.join(tools)}")
    path = world.dir / "big.eml"
    out = world.dir / "time.out"
    res = {t: [] for t in tools}
    allruns = []
    offset = write_big(path, mb)
    for k in range(rounds):
        order = tools[k % len(tools):] + tools[:k % len(tools)]
        for tool in order:
            subject = f"bench big {tool} {k} {RUN_ID}"
            set_subject(path, offset, subject)
            argv = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(out), *world.argv(tool, "plain")]
            r = run_one(tool, argv, path, world.errfd(tool), world.env, subject, 600)
            try:
                r.rss_kb = int(out.read_text().split()[-1])
            except (OSError, ValueError, IndexError):
                r.rss_kb = 0
            allruns.append(r)
            if r.rc != 0:
                note = f"big message: {tool} exited {r.rc}: " + world.stderr_tail(tool, 2)
                (problems if tool == "switchmail" else world.notes).append(note)
            else:
                res[tool].append(r)
    path.unlink()
    check_delivery(world, allruns, "big message", problems, queue_modes=("plain",))
    return {t: {"wall": [r.wall for r in rs], "cpu": [r.cpu for r in rs],
                "rss": [r.rss_kb / 1024 for r in rs], "n": rounds, "ok": len(rs)}
            for t, rs in res.items()}


# --------------------------------------------------------------------------
# 3. backlog


def backlog(world: World, problems: list):
    n, sample = SETTINGS["BENCH_BACKLOG"], SETTINGS["BENCH_BACKLOG_MSMTP"]
    sample = min(sample, n)
    # Queueing waits mostly on fsync, so a few more than the CPUs at a time.
    par = max(4, 4 * (os.cpu_count() or 1))
    log(f"backlog: queueing {n} messages with switchmail -odq ({par} at a time)")
    msgdir = world.dir / "backlog-msgs"
    msgdir.mkdir()
    queued = []
    errfd = world.errfd("switchmail")
    argv = world.argv("switchmail", "backlog", extra=("-odq",))
    t = time.perf_counter()
    with Reaper([], 1800) as reaper:
        pending = {}
        for i in range(n + par):
            if i >= par:                # keep `par` running: wait for one
                pid, rc = reaper.wait_any()
                subject, p = pending.pop(pid)
                if rc != 0:
                    raise Broken(f"switchmail -odq exited {rc}:\n"
                                 + world.stderr_tail("switchmail"))
                queued.append(Run("switchmail", 0, 0, 0, False, subject))
                p.unlink()
            if i < n:
                subject = f"bench backlog switchmail {i} {RUN_ID}"
                p = msgdir / f"{i}.eml"
                p.write_bytes(message_2k(subject))
                pid = spawn(argv, p, errfd, world.env)
                reaper.running.add(pid)
                pending[pid] = (subject, p)
    world.notes.append(f"backlog: queueing {n} messages with switchmail -odq, {par} at a "
                       f"time, took {time.perf_counter() - t:.1f} s (not part of the figures)")
    waiting = world.queued("backlog")
    if waiting != n:
        raise Broken(f"backlog: {waiting} message(s) in the queue after {n} switchmail -odq")
    before, _ = world.xstat()
    if world.received()[queued[0].subject]:
        raise Broken("backlog: a message queued with -odq was delivered at once")

    msg = world.dir / "msg-2k.eml"
    msmtp_runs = []

    def msmtp_half(count, offset):
        for i in range(offset, offset + count):
            subject = f"bench backlog msmtp {i} {RUN_ID}"
            msg.write_bytes(message_2k(subject))
            msmtp_runs.append(run_one("msmtp", world.argv("msmtp", "plain"), msg,
                                      world.errfd("msmtp"), world.env, subject, 60))

    log(f"backlog: {sample // 2} msmtp sends, switchmail -q of {n}, "
        f"{sample - sample // 2} msmtp sends")
    msmtp_half(sample // 2, 0)
    argv = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(world.dir / "time.out"),
            world.switchmail, "-C", str(world.sw_conf["backlog"]), "-q"]
    flush = run_one("switchmail", argv, "/dev/null", errfd, world.env, "", 1800)
    try:
        flush.rss_kb = int((world.dir / "time.out").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        flush.rss_kb = 0
    msmtp_half(sample - sample // 2, sample // 2)
    if flush.rc != 0:
        problems.append(f"backlog: switchmail -q exited {flush.rc}: "
                        + world.stderr_tail("switchmail", 2))
    left = world.queued("backlog")
    delivered = check_delivery(world, queued, "backlog switchmail -q", problems)
    if left:
        problems.append(f"backlog: {left} message(s) still queued after switchmail -q")
    msmtp_ok = [r for r in msmtp_runs if r.rc == 0]
    check_delivery(world, msmtp_runs, "backlog msmtp", problems)
    if len(msmtp_ok) != len(msmtp_runs):
        world.notes.append(f"backlog: msmtp failed {len(msmtp_runs) - len(msmtp_ok)} "
                           f"of {len(msmtp_runs)}")
    after, _ = world.xstat()
    msmtp_time = sum(r.wall for r in msmtp_ok)
    return {
        "n": n, "delivered": delivered, "sink_delta": after - before,
        "flush_wall": flush.wall, "flush_cpu": flush.cpu, "flush_rss": flush.rss_kb / 1024,
        "sw_rate": delivered / flush.wall if flush.wall else 0,
        "msmtp_n": len(msmtp_runs), "msmtp_ok": len(msmtp_ok),
        "msmtp_rate": len(msmtp_ok) / msmtp_time if msmtp_time else 0,
        "msmtp_wall": [r.wall for r in msmtp_ok], "sampled": sample < n,
    }


# --------------------------------------------------------------------------
# 4. burst


def burst(world: World, problems: list):
    n, rounds = SETTINGS["BENCH_BURST"], SETTINGS["BENCH_BURST_ROUNDS"]
    tools = ["switchmail", "msmtp"]
    log(f"burst: {n} concurrent invocations, {rounds} round(s) each of {', '.join(tools)}")
    msgdir = world.dir / "burst-msgs"
    msgdir.mkdir()
    res = {t: {"wall": [], "ok": [], "exit0": [], "n": n} for t in tools}
    for k in range(rounds):
        for tool in (tools if k % 2 == 0 else tools[::-1]):
            subjects = [f"bench burst {tool} {k} {i} {RUN_ID}" for i in range(n)]
            paths = []
            for i, s in enumerate(subjects):
                p = msgdir / f"{i}.eml"
                p.write_bytes(message_2k(s))
                paths.append(p)
            argv = world.argv(tool, "plain")
            errfd = world.errfd(tool)
            start = time.perf_counter()
            pids = [spawn(argv, p, errfd, world.env) for p in paths]
            runs, end = [], start
            with Reaper(pids, 300) as reaper:
                for pid, s in zip(pids, subjects):
                    rc, ru, t_end = reaper.wait(pid)
                    end = max(end, t_end)
                    runs.append(Run(tool, rc, 0, ru.ru_utime + ru.ru_stime,
                                    pid in reaper.killed, s))
            exit0 = sum(1 for r in runs if r.rc == 0)
            ok = check_delivery(world, runs, f"burst {tool} round {k}", problems,
                                queue_modes=("plain",) if tool == "switchmail" else ())
            if exit0 != n:
                note = (f"burst {tool} round {k}: {n - exit0} of {n} exited non-zero: "
                        + world.stderr_tail(tool, 2).replace("\n", " | "))
                (problems if tool == "switchmail" else world.notes).append(note)
            res[tool]["wall"].append(end - start)
            res[tool]["ok"].append(ok)
            res[tool]["exit0"].append(exit0)
    if world.queued("plain"):
        log(f"burst: {world.queued('plain')} switchmail message(s) were deferred; flushing")
        subprocess.run([world.switchmail, "-C", str(world.sw_conf["plain"]), "-q"],
                       env=world.env, stdin=subprocess.DEVNULL)
    return res


# --------------------------------------------------------------------------
# The report


def first_line(argv) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not available"


def deb_version(pkg: str) -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "not installed"
    except OSError:
        return "unknown"


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    debian = Path("/etc/debian_version").read_text().strip() \
        if Path("/etc/debian_version").exists() else "?"
    return [("nproc", str(len(os.sched_getaffinity(0)))), ("CPU", model),
            ("kernel", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("Debian", debian)]


def git_state() -> str:
    """The commit the sources are at, and whether tracked files differ."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if not head:
        return ""
    return f" (git {head}" + (", with uncommitted changes)" if dirty else ")")


def versions(world: World):
    return [
        ("switchmail", first_line([world.switchmail, "--version"]) + world.git),
        ("msmtp", first_line([MSMTP, "--version"])),
        ("esmtp", f"esmtp {deb_version('esmtp')} (Debian package)"),
        ("libesmtp", f"libESMTP {deb_version('libesmtp6')} (Debian libesmtp6)"),
        ("openssl", first_line(["openssl", "version"])),
        ("gnutls (msmtp's TLS)", deb_version("libgnutls30")),
        ("python3-aiosmtpd", deb_version("python3-aiosmtpd")
         + " (not used: the C sink serves every mode)"),
        ("python3", platform.python_version()),
    ]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def span(xs, scale=1.0, fmt="{:.1f}"):
    if not xs:
        return "—"
    return (fmt.format(med(xs) * scale) + " (" + fmt.format(min(xs) * scale) + "–"
            + fmt.format(max(xs) * scale) + ")")


def ratio(a, b):
    if not a or not b or b != b or a != a:
        return None
    return a / b


def fmt_ratio(r, digits=3):
    return "—" if r is None else f"{r:.{digits}f}"


def verdict(value, limit, at_least=False):
    if value is None:
        return "—"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "MISS"


def build_table(pm, big, bl, bu, st=None):
    rows = []
    head = ("measurement", "switchmail", "msmtp", "esmtp", "switchmail / msmtp",
            "esmtp / msmtp", "target", "")
    for mode in PM_MODES:
        if (mode, "switchmail") not in pm:
            continue
        for what, unit, limit in (("wall", "ms", 0.2), ("cpu", "ms", 0.8)):
            cells = {}
            for tool in ("switchmail", "msmtp", "esmtp"):
                d = pm.get((mode, tool))
                if d is None:
                    cells[tool] = "n/a" if tool == "esmtp" and mode == "smtps" else "—"
                    continue
                text = span(d[what], 1000)
                extra = []
                if d.get("switched"):
                    hw, aw = d["switched"]
                    extra.append(f"hung {hw} of {aw} with TLS 1.3 session tickets, then "
                                 f"{d['n'] - aw} runs against a listener sending none"
                                 + (f" (hung {d['hung'] - hw})" if d["hung"] > hw else "")
                                 + (", then stopped" if d["stopped"] else ""))
                elif d["hung"]:
                    extra.append(f"hung {d['hung']} of {d['n']}"
                                 + (", then stopped" if d["stopped"] else ""))
                if d["ok"] + d["hung"] < d["n"]:
                    extra.append(f"failed {d['n'] - d['ok'] - d['hung']} of {d['n']}")
                if "resumed" in d:
                    extra.append(f"resumed {d['resumed']} of {d['tls_received']}")
                cells[tool] = text + ("; " + "; ".join(extra) if extra else "")
            r = ratio(med(pm[(mode, "switchmail")][what]), med(pm[(mode, "msmtp")][what]))
            re = ratio(med(pm[(mode, "esmtp")][what]), med(pm[(mode, "msmtp")][what])) \
                if (mode, "esmtp") in pm else None
            label = "wall" if what == "wall" else "CPU (user+sys)"
            info = mode not in MODES
            rows.append((f"{MODE_TITLE[mode]}: {label} per message, {unit}", cells["switchmail"],
                         cells["msmtp"], cells["esmtp"], fmt_ratio(r), fmt_ratio(re),
                         f"(≤ {limit}, info)" if info else f"≤ {limit}",
                         f"({verdict(r, limit)})" if info else verdict(r, limit)))
    mb = SETTINGS["BENCH_BIG_MB"]
    if big:
        e = big.get("esmtp")
        for what, unit, limit, scale, fmt in (("wall", "s", 1.0, 1, "{:.2f}"),
                                             ("cpu", "s", 0.5, 1, "{:.2f}"),
                                             ("rss", "MiB", None, 1, "{:.1f}")):
            s, m = big["switchmail"][what], big["msmtp"][what]
            r = ratio(med(s), med(m))
            re = ratio(med(e[what]), med(m)) if e else None
            if what == "rss":
                target, v = "≤ 8 MiB", ("PASS" if s and med(s) <= 8 else "MISS" if s else "—")
            else:
                target, v = f"≤ {limit}", verdict(r, limit)
            label = {"wall": "wall", "cpu": "CPU (user+sys)", "rss": "peak RSS"}[what]
            rows.append((f"{mb} MB message: {label}, {unit}", span(s, scale, fmt),
                         span(m, scale, fmt), span(e[what], scale, fmt) if e else "—",
                         fmt_ratio(r), fmt_ratio(re), target, v))
    if bl:
        r = ratio(bl["sw_rate"], bl["msmtp_rate"])
        sample = (f"{bl['msmtp_ok']} sequential sends"
                  + (f" (a sample, rate extrapolated to {bl['n']})" if bl["sampled"] else ""))
        rows.append((f"backlog of {bl['n']}: messages per second",
                     f"{bl['sw_rate']:.0f} (one `-q`: {bl['flush_wall']:.2f} s wall, "
                     f"{bl['flush_cpu']:.2f} s CPU, {bl['flush_rss']:.1f} MiB RSS; "
                     f"{bl['delivered']}/{bl['n']} received once)",
                     f"{bl['msmtp_rate']:.1f} ({sample}; per send "
                     f"{span(bl['msmtp_wall'], 1000)} ms)",
                     "—", fmt_ratio(r, 1), "—", "≥ 10", verdict(r, 10, at_least=True)))
    if bu:
        n = SETTINGS["BENCH_BURST"]
        s, m = bu["switchmail"], bu["msmtp"]

        def cell(d):
            return (f"{span(d['wall'], 1, '{:.2f}')}; received once "
                    + ", ".join(f"{ok}/{n}" for ok in d["ok"]))
        rows.append((f"burst of {n} concurrent: wall, s", cell(s), cell(m), "—",
                     fmt_ratio(ratio(med(s["wall"]), med(m["wall"]))), "—",
                     f"all {n} exit 0, once each",
                     "PASS" if all(x == n for x in s["ok"] + s["exit0"]) else "MISS"))
    if st:
        for what, label in (("wall", "wall"), ("cpu", "CPU (user+sys)")):
            a, b = st["switchmail --version"][what], st["msmtp --version"][what]
            rows.append((f"start-up only (`--version`): {label}, ms", span(a, 1000),
                         span(b, 1000), "—", fmt_ratio(ratio(med(a), med(b))), "—",
                         "(for scale)", ""))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


HOW_TO_READ = """\
## How to read this

- Each cell is the **median** over the runs, with the **min–max** in
  parentheses.  Ratios are of medians: **switchmail / msmtp** below 1 means
  switchmail costs less; a target is met (PASS) when the ratio is on the right
  side of it.  MISS is information for whoever works on the code; it does not
  fail `make bench`, which fails only when something broke (a lost or
  duplicated message, a switchmail failure, a setup error).
- **wall** is the time from spawning the client to its exit, measured by the
  parent; **CPU** is user + system time of the client from `wait4()` (with
  its children, if any).  Clients are started with `posix_spawn` (vfork +
  exec), their standard input read from a file, and run one after another,
  taking turns in rotating order (A/B interleaved) so load drift hits them
  alike.  One warm-up send each per mode is not counted.
- **Per message**: a 2048-byte message (From, To, Subject, Date, Message-ID),
  `-t -i`, against a C sink on 127.0.0.1 that answers every command at once
  and writes each reply whole with TCP_NODELAY.  A client that writes a
  command in several pieces, or leaves Nagle on, waits for the peer's delayed
  ACK (~40 ms on Linux loopback): that is the gap between the ~50 ms of msmtp
  and esmtp and the few ms of a client that writes whole commands.  TLS rows
  include the handshake (TLS 1.3, ECDSA P-256 certificate from a throwaway
  CA, verified by every client on a full handshake) and AUTH PLAIN, which
  the sink requires.
- **TLS session resumption**: switchmail keeps the TLS session of a fully
  verified handshake (in its queue directory; `tls_session_cache`, on by
  default, like Postfix's `smtp_tls_session_cache_database`) and resumes it
  on its next send, which skips the certificate, its check and the server's
  signature; msmtp and esmtp keep no session across invocations, so every
  send of theirs is a full handshake.  The STARTTLS, implicit TLS and
  system CA store rows therefore compare switchmail's usual cost, a resumed
  handshake (its warm-up send made the full one), with msmtp's full
  handshake.  The **full handshakes** row is STARTTLS + AUTH with
  `tls_session_cache = false;` for switchmail, so that each of its sends
  makes a full handshake too: its cost on a first send, after the hour a
  session is kept, or with the cache off.  The sink records for every
  message whether its TLS session was resumed (OpenSSL's
  `SSL_session_reused`); each TLS cell says "resumed k of m" (of the m
  messages received), and a count that is not what this text says is
  listed under problems and notes.
- **System CA store** rows: STARTTLS + AUTH again, but each client trusts
  the system store the way a real deployment reads it, plus the test CA:
  switchmail without `tls_ca_file` (SSL_CERT_DIR points it at a copy of
  /etc/ssl/certs's hashed links with the test CA added), msmtp with
  `tls_trust_file` set to Debian's ca-certificates bundle plus the test CA
  (what `tls_trust_file system` parses through GnuTLS).  switchmail's
  sends resume here too, so they do not consult the store at all (only its
  warm-up's full handshake did); msmtp parses the bundle on every send.  Not
  one of the issue's three modes: the verdict is in parentheses, as for the
  full handshakes row.
- **esmtp** (libESMTP's own sendmail client) does plain and STARTTLS only; it
  has no implicit TLS (n/a).  It is known to hang after the message with a
  TLS 1.3 server that sends session tickets: each run is bounded by
  BENCH_ESMTP_TIMEOUT and killed, and counted as hung.  After
  BENCH_ESMTP_MAX_HANGS hangs, esmtp goes on against a second sink whose
  STARTTLS listener sends no tickets (the cell says how many runs went
  where); its figures are over the runs that finished.  esmtp's certificate
  check matches no IP addresses, so it connects to "localhost" (from
  /etc/hosts) with STARTTLS.
- **Big message**: peak RSS is `ru_maxrss` as reported by GNU time (%M), which
  starts from the size of the forked `time` process (~1–2 MiB), for every
  client alike.  The 8 MiB target is absolute, the others are ratios.
- **Backlog**: the messages are queued first with `switchmail -odq` (not
  timed), then one `switchmail -q` delivers them all (several messages per
  SMTP session) and is timed as a whole; msmtp has no queue, so its rate is
  that of sequential invocations, one message each (half of them before the
  flush, half after).  When the msmtp count is smaller than the backlog, it is
  a sample and its rate is taken as the rate for the whole backlog.
- **Burst**: all invocations are spawned at once; the wall time runs from the
  first spawn to the last exit.  "received once" counts messages whose unique
  Subject the sink recorded exactly once.
- Loopback figures show a client's own cost and its protocol stalls; over a
  real network each round trip adds the path's latency, for every client.
"""


def report(world, pm, big, bl, bu, st, problems, started, elapsed):
    table = build_table(pm, big, bl, bu, st)
    s = SETTINGS
    settings = ", ".join(f"{k}={v}" for k, v in s.items())
    parts = [
        "# switchmail benchmark: results",
        "",
        f"Run by `make bench` on {started} (UTC), {elapsed:.0f} s in all.  "
        "Figures from one run on this machine; rerun to compare.",
        "",
        table,
        "",
        "## Settings",
        "",
        f"{settings}.",
        "",
        f"Per message: {s['BENCH_SENDS']} sends per client and mode "
        f"({s['BENCH_SENDS_BUNDLE']} with full handshakes, {s['BENCH_SENDS_BUNDLE']} "
        f"with the system CA store: {world.bundle_certs} certificates with the test CA), "
        "after one warm-up send each, not counted.  Big message: "
        f"{s['BENCH_BIG_MB']} MB, {s['BENCH_BIG_ROUNDS']} round(s).  Backlog: "
        f"{s['BENCH_BACKLOG']} messages for switchmail -q; msmtp "
        f"{min(s['BENCH_BACKLOG_MSMTP'], s['BENCH_BACKLOG'])} sequential sends"
        + (f" (a sample: all {s['BENCH_BACKLOG']} would take "
           f"~{s['BENCH_BACKLOG'] * 0.06 / 60:.1f} min at msmtp's ~60 ms per message)"
           if s["BENCH_BACKLOG_MSMTP"] < s["BENCH_BACKLOG"] else "")
        + f".  Burst: {s['BENCH_BURST']} concurrent, {s['BENCH_BURST_ROUNDS']} round(s).",
        "",
        "Time per phase: " + ", ".join(f"{name} {secs:.0f} s" for name, secs in world.phases)
        + ".",
        "",
    ]
    if problems or world.notes:
        parts += ["## Problems and notes", ""]
        parts += [f"- PROBLEM: {p}" for p in problems]
        parts += [f"- note: {n}" for n in world.notes]
        parts.append("")
    parts += ["## Machine", ""]
    parts += [f"- {k}: {v}" for k, v in machine()]
    if len(world.load) == 2:
        parts.append("- load average (1, 5, 15 min) at the start: "
                     + ", ".join(f"{x:.2f}" for x in world.load[0])
                     + "; at the end: " + ", ".join(f"{x:.2f}" for x in world.load[1])
                     + " (the burst phase itself raises the 1-minute figure; other work on "
                     "the machine shows here too: the interleaving keeps the ratios fair, "
                     "not the absolute figures)")
    if st:
        d = st["/bin/true"]
        parts.append(f"- process floor: spawning `/bin/true` costs {span(d['wall'], 1000)} ms "
                     f"wall and {span(d['cpu'], 1000)} ms CPU here (median, min–max)")
    parts += ["", "## Versions", ""]
    parts += [f"- {k}: {v}" for k, v in versions(world)]
    parts += ["", HOW_TO_READ]
    return table, "\n".join(parts)


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: bench.py SWITCHMAIL SINK")
    switchmail, sink = (os.path.abspath(a) for a in argv[1:])
    for path in (switchmail, sink, MSMTP, GNU_TIME):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is missing (make bench installs and builds it)")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    world = World(switchmail, sink)
    world.load = [os.getloadavg()]
    world.git = git_state()       # the sources the binary was built from, at the start
    problems = []
    pm = big = bl = bu = st = None

    def phase(name, fn, *args):
        t = time.time()
        result = fn(*args)
        world.phases.append((name, time.time() - t))
        return result
    try:
        world.start()
        log(f"sink on 127.0.0.1 ports {world.ports}, work in {world.dir}")
        pm = phase("per message", per_message, world, problems)
        if SETTINGS["BENCH_BIG_MB"] > 0 and SETTINGS["BENCH_BIG_ROUNDS"] > 0:
            big = phase("big message", big_message, world, problems)
        if SETTINGS["BENCH_BACKLOG"] > 0:
            bl = phase("backlog", backlog, world, problems)
        if SETTINGS["BENCH_BURST"] > 0 and SETTINGS["BENCH_BURST_ROUNDS"] > 0:
            bu = phase("burst", burst, world, problems)
        st = phase("start-up", startup, world)
        world.load.append(os.getloadavg())
        total, _ = world.xstat()
        counts = world.received()
        if sum(counts.values()) != total:
            problems.append(f"the sink counted {total} messages but recorded "
                            f"{sum(counts.values())} subjects")
        table, text = report(world, pm, big, bl, bu, st, problems, started, time.time() - t0)
    except Broken as e:
        problems.append(str(e))
        log(f"BROKEN: {e}")
        return 1
    finally:
        world.stop()
    print(table)
    for n in world.notes:
        print(f"note: {n}")
    for p in problems:
        print(f"PROBLEM: {p}")
    OUT.write_text(text)
    log(f"wrote {OUT}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
