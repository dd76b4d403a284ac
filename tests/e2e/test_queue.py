"""End-to-end: the queue (issue 4, DESIGN §5) with the built binaries against
real SMTP servers on 127.0.0.1.

What is asserted is what can be observed from outside: what the servers
received (messages, recipients, sessions, commands), exit codes, the files
in spool/{tmp,new,failed}, the log, and the mailq listing.  Temporary
failures queue the message (exit 0); `switchmail -q` / `switchmailctl queue
flush` attempt every waiting message, `switchmailctl queue run` only those
whose retry time has come; expired or refused mail moves to failed/ with a
failure notice; every message arrives exactly once, whatever crashes or
races happen on the way.
"""
import collections
import errno
import os
import random
import re
import select
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


from conftest import (BASE_ENV, SANITIZER_ENV, Result, _failed, free_port,
                      make_config, route_for, switchmail_binary)
from smtpd import SMTPServer

EX_UNAVAILABLE = 69
USER = ("contact@example.org", "s3cret")
NATIVE_FROM = "no-reply@platform.example"
# One mailq entry starts with its id, then " " or "*" (busy: locked).
ENTRY_RE = re.compile(r"^([0-9A-F]{20})([ *])", re.M)
SUMMARY_RE = re.compile(r"(\d+) sent, (\d+) deferred, (\d+) failed of (\d+) waiting")


# --------------------------------------------------------------------------
# Helpers


def msg(subject, msgid=None, frm=None, to=None):
    """A small message (LF line ends, as a caller writes it)."""
    head = []
    if frm:
        head.append(f"From: {frm}")
    if to:
        head.append(f"To: {to}")
    head.append(f"Subject: {subject}")
    if msgid:
        head.append(f"Message-ID: <{msgid}>")
    return ("\n".join(head) + f"\n\nThe body of {subject}.\n").encode()


def native_at(port, **over):
    """A plain native relay at 127.0.0.1:port (nothing there, as a rule)."""
    route = {"host": "127.0.0.1", "port": port, "encryption": "none",
             "from": NATIVE_FROM, "timeout": 5}
    route.update(over)
    return route


def spool_files(tmp_path, sub):
    """The names in spool/<sub>, sorted (oldest id first); [] if absent."""
    d = Path(tmp_path) / "spool" / sub
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def queued(r):
    """A temporary failure: exit 0, nothing on stderr, the message waits in
    new/ and the log says why.  Returns the log."""
    assert r.returncode == 0, r
    assert r.stderr == "", r
    new = r.config_path.parent / "spool" / "new"
    assert new.is_dir() and any(new.iterdir()), r
    return r.log()


def listed(text):
    """The ids a mailq listing shows, in order."""
    return [m.group(1) for m in ENTRY_RE.finditer(text)]


def mailq(run_switchmail):
    q = run_switchmail([], argv0="mailq")
    assert q.returncode == 0, q
    assert q.stderr == "", q
    return q.stdout


def child_env():
    env = dict(BASE_ENV)
    env.update({k: os.environ[k] for k in SANITIZER_ENV if k in os.environ})
    return env


def ctl_binary():
    return switchmail_binary().parent / "switchmailctl"


def run_ctl(run_switchmail, *args, timeout=60):
    """switchmailctl -C <the test's config> args...; recorded in the
    runner's history (printed when the test fails)."""
    cfg = run_switchmail.write_config(None)
    argv = [str(ctl_binary()), "-C", str(cfg), *args]
    start = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       env=child_env(), cwd="/", timeout=timeout)
    res = Result(args=argv, returncode=p.returncode,
                 stdout=p.stdout.decode("utf-8", "replace"),
                 stderr=p.stderr.decode("utf-8", "replace"),
                 stdout_bytes=p.stdout, stderr_bytes=p.stderr,
                 config_path=cfg, log_path=run_switchmail.log_path,
                 duration=time.monotonic() - start)
    run_switchmail.history.append(res)
    return res


def end_input(proc, data=b""):
    """Write data and EOF to a run_switchmail.popen() process's stdin, and
    detach the pipe (the runner's teardown must not flush a closed file)."""
    if data:
        proc.stdin.write(data)
    proc.stdin.close()
    proc.stdin = None


def wait_until(predicate, timeout, what):
    """Poll predicate (for states the harness has no wait_* for, such as a
    message a stalled server holds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout}s")
        time.sleep(0.02)


def once_for(addr, reply):
    """An rcpt_replies callable: `reply` to the first RCPT of addr only."""
    lock = threading.Lock()
    seen = []

    def spec(a):
        with lock:
            if a.lower() == addr.lower() and not seen:
                seen.append(a)
                return reply
        return None
    return spec


def rcpt_lines(server, addr):
    """How many times any session of server was sent RCPT TO:<addr>."""
    return sum(1 for s in server.sessions for who, line in s.transcript
               if who == "C" and line.upper().startswith("RCPT")
               and f"<{addr}>".lower() in line.lower())


def run_on_pty(argv, timeout=60):
    """Run argv with stderr on a pseudo-terminal (stdout a pipe); returns
    (exit code, what the terminal showed, stdout)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave,
                                env=child_env(), cwd="/")
    finally:
        os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError as exc:          # EIO: the child side is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            shown += chunk
        out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, shown.decode("utf-8", "replace"), out


# --------------------------------------------------------------------------
# A server on a port the test chooses: it can go down and come back


@pytest.fixture
def port_server(pki, request):
    """Factory: port_server(port, **SMTPServer kwargs) starts an
    SMTPServer on 127.0.0.1:port (retrying a moment while the port is
    still held).  All are stopped at teardown."""
    started = []

    def start(port, **kwargs):
        if kwargs.get("mode", "plain") != "plain":
            kwargs.setdefault("cert", pki.server)
        deadline = time.monotonic() + 10
        while True:
            server = SMTPServer(port=port, **kwargs)
            try:
                server.start()
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        started.append(server)
        return server

    yield start
    failed = _failed(request)
    for server in list(started):
        server.stop()
        if failed and server.sessions:
            print(server.dump())


# --------------------------------------------------------------------------
# 1. down, then up


def test_server_down_then_up_delivers_exactly_once(tmp_path, port_server, run_switchmail):
    port = free_port()
    cfg = make_config(tmp_path, native=native_at(port))
    r = run_switchmail(["-i", "-f", "app@example.org", "to@x.example"],
                       msg("Down then up", "down-up@example.org"), cfg)
    log = queued(r)
    assert "refused the connection" in log
    (qid,) = spool_files(tmp_path, "new")
    assert f"{qid}: queued" in log
    assert spool_files(tmp_path, "tmp") == []

    text = mailq(run_switchmail)
    assert listed(text) == [qid]
    entry = text[text.index(qid):]
    assert "<app@example.org>" in entry and "<to@x.example>" in entry
    assert "1 attempt" in entry
    assert "refused the connection" in entry and f"port {port}" in entry
    assert text.splitlines()[-1] == "-- 1 message waiting, 0 in failed/"

    server = port_server(port)                  # the relay comes back
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    assert r.stderr == ""                       # no terminal: no progress
    (m,) = server.wait_for(1)
    assert m.header("Subject") == "Down then up"
    assert m.header("Message-ID") == "<down-up@example.org>"
    assert m.rcpt_tos == ["to@x.example"]
    assert spool_files(tmp_path, "new") == []
    assert spool_files(tmp_path, "failed") == []
    assert f"{qid}: to=<to@x.example>" in r.log() and "result=delivered" in r.log()

    r = run_switchmail(["-q"])                  # nothing left to send
    assert r.returncode == 0, r
    assert len(server.wait_closed(1)) == 1
    assert len(server.messages) == 1
    assert mailq(run_switchmail).splitlines()[-1] == "0 messages waiting, 0 in failed/"


# --------------------------------------------------------------------------
# 2. temporary refusals


def test_greeting_421_queues_then_delivers(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(greeting="421 4.3.2 busy, come back later")
    r = run_switchmail(["-i", "to@x.example"], msg("Busy server"),
                       make_config(tmp_path, native=route_for(server)))
    log = queued(r)
    assert "421 4.3.2 busy, come back later" in log
    assert server.messages == [] and server.rejected == []
    assert "421 4.3.2 busy" in mailq(run_switchmail)

    server.greeting = None
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = server.wait_for(1)
    assert m.header("Subject") == "Busy server"
    assert spool_files(tmp_path, "new") == []


def test_451_at_rcpt_queues_and_mailq_shows_it(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(rcpt_replies={"to@x.example": "451 4.3.0 try later"})
    r = run_switchmail(["-i", "to@x.example"], msg("Greylisted"),
                       make_config(tmp_path, native=route_for(server)))
    log = queued(r)
    assert "451 4.3.0 try later" in log
    (qid,) = spool_files(tmp_path, "new")
    r = run_switchmail(["-bp"])                 # -bp is mailq
    assert r.returncode == 0, r
    assert listed(r.stdout) == [qid]
    assert "1 attempt" in r.stdout and "451 4.3.0 try later" in r.stdout
    assert server.messages == []

    server.rcpt_replies = None
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = server.wait_for(1)
    assert m.rcpt_tos == ["to@x.example"]
    assert spool_files(tmp_path, "new") == []


def test_452_for_one_recipient_queues_only_that_one(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(rcpt_replies=once_for(
        "c@x.example", "452 4.5.3 Too many recipients"))
    r = run_switchmail(["-i", "a@x.example", "b@x.example", "c@x.example"],
                       msg("Three recipients", "three@example.org"),
                       make_config(tmp_path, native=route_for(server)))
    log = queued(r)
    assert "452 4.5.3 Too many recipients" in log
    assert "result=delivered" in log and "result=deferred" in log
    (first,) = server.wait_for(1)
    assert first.rcpt_tos == ["a@x.example", "b@x.example"]

    text = mailq(run_switchmail)                # only c still pending
    assert "<c@x.example>" in text
    assert "<a@x.example>" not in text and "<b@x.example>" not in text
    assert "452 4.5.3" in text

    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    first, second = server.wait_for(2)
    assert second.rcpt_tos == ["c@x.example"]
    assert second.header("Message-ID") == "<three@example.org>"
    assert spool_files(tmp_path, "new") == []
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    assert len(server.messages) == 2
    for addr in ("a@x.example", "b@x.example", "c@x.example"):
        got = sum(m.rcpt_tos.count(addr) for m in server.messages)
        assert got == 1, (addr, [m.rcpt_tos for m in server.messages])


# --------------------------------------------------------------------------
# 3. a permanent refusal is the caller's to hear, not the queue's


def test_552_at_end_of_data_exits_69_and_queues_nothing(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(data_reply="552 5.3.4 message too big")
    r = run_switchmail(["-i", "to@x.example"], msg("Too big"),
                       make_config(tmp_path, native=route_for(server)))
    assert r.returncode == EX_UNAVAILABLE, r
    assert "552 5.3.4 message too big" in r.stderr
    assert "result=refused" in r.log()
    assert server.messages == [] and len(server.rejected) == 1
    for sub in ("tmp", "new", "failed"):
        assert spool_files(tmp_path, sub) == [], sub
    assert mailq(run_switchmail).splitlines()[-1] == "0 messages waiting, 0 in failed/"
    assert len(server.wait_closed(1)) == 1      # and no failure notice went out


# --------------------------------------------------------------------------
# 4. a connection dropped mid-transfer


@pytest.mark.parametrize("drop_at", ["DATA", "DATA_END"])
def test_connection_dropped_mid_data_queues_then_delivers(tmp_path, smtp_server,
                                                          run_switchmail, drop_at):
    server = smtp_server(drop_at=drop_at)
    r = run_switchmail(["-i", "to@x.example"], msg("Dropped", "dropped@example.org"),
                       make_config(tmp_path, native=route_for(server)))
    log = queued(r)
    assert "closed the connection" in log
    assert server.messages == []
    assert len(server.rejected) == (1 if drop_at == "DATA_END" else 0)

    server.drop_at = None                       # the server behaves again
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = server.wait_for(1)
    assert m.header("Message-ID") == "<dropped@example.org>"
    assert spool_files(tmp_path, "new") == []
    r = run_switchmail(["-q"])
    assert len(server.messages) == 1


# --------------------------------------------------------------------------
# 5. a server that stops answering


@pytest.mark.parametrize("stall_at", ["MAIL", "DATA_END"])
def test_stalled_server_queues_within_the_timeout(tmp_path, smtp_server, run_switchmail,
                                                  stall_at):
    server = smtp_server(stall_at=stall_at)
    r = run_switchmail(["-i", "to@x.example"], msg("Slow server"),
                       make_config(tmp_path, native=route_for(server, timeout=1)),
                       timeout=60)
    queued(r)
    # timeout = 1: each reply within 1 s, the final dot's within 4 s
    assert r.duration < 15, r
    assert server.messages == []
    assert len(spool_files(tmp_path, "new")) == 1


@pytest.mark.parametrize("stall_at", ["MAIL", "DATA_END"])
def test_stalled_server_error_names_the_timeout(tmp_path, smtp_server, run_switchmail,
                                                stall_at):
    server = smtp_server(stall_at=stall_at)
    r = run_switchmail(["-i", "to@x.example"], msg("Slow server"),
                       make_config(tmp_path, native=route_for(server, timeout=1)),
                       timeout=60)
    log = queued(r)
    text = mailq(run_switchmail)
    attempt_line = next(line for line in text.splitlines() if "attempt" in line)
    assert "(no error recorded)" not in attempt_line
    assert "354" not in attempt_line
    timeout_words = re.compile(r"time[sd]? ?out|did not answer|within 1 s", re.I)
    assert timeout_words.search(attempt_line), attempt_line
    assert timeout_words.search(log.splitlines()[-1]), log


# --------------------------------------------------------------------------
# 6. a refused login waits for the admin to fix the password


def test_auth_refused_then_password_fixed(tmp_path, smtp_server, run_switchmail, closed_port):
    provider = smtp_server(mode="starttls", auth=USER, name="provider")
    native = native_at(closed_port)
    cfg = make_config(tmp_path, native=native,
                      connector=route_for(provider, host="localhost",
                                          password="wrong-pass"))
    r = run_switchmail(["-i", "to@x.example"],
                       msg("Needs login", "login@example.org", frm="shop@example.org"), cfg)
    log = queued(r)
    assert "refused the login" in log
    (s,) = provider.wait_closed(1)
    assert "AUTH" in s.commands and "MAIL" not in s.commands
    assert provider.messages == []
    text = mailq(run_switchmail)
    assert "refused the login" in text and "wrong-pass" not in text

    run_switchmail.write_config(make_config(
        tmp_path, native=native, connector=route_for(provider, host="localhost")))
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = provider.wait_for(1)
    assert m.auth_user == USER[0] and m.mail_from == USER[0]
    assert m.header("Message-ID") == "<login@example.org>"
    assert spool_files(tmp_path, "new") == []
    r = run_switchmail(["-q"])
    assert len(provider.messages) == 1
    assert "wrong-pass" not in r.log() and USER[1] not in r.log()


# --------------------------------------------------------------------------
# 7. expiry: failed/ and a failure notice, sent in the same run


def expiry_settings(tmp_path, **extra):
    return {"queue": {"dir": str(tmp_path / "spool"), "max_age": 2}, **extra}


def test_expired_message_fails_and_sender_gets_a_notice(tmp_path, smtp_server,
                                                        run_switchmail, closed_port):
    settings = expiry_settings(tmp_path)
    cfg = make_config(tmp_path, native=native_at(closed_port), settings=settings)
    r = run_switchmail(["-i", "-f", "alice@example.org", "to@x.example"],
                       msg("Quarterly report", "q-report-1@example.org",
                           frm="alice@example.org"), cfg)
    queued(r)
    # bob's notice will be refused: a notice about a notice must not follow
    r = run_switchmail(["-i", "-f", "bob@example.org", "to@x.example"],
                       msg("Weekly digest", "digest-7@example.org", frm="bob@example.org"))
    queued(r)
    originals = spool_files(tmp_path, "new")
    assert len(originals) == 2
    time.sleep(2.5)                             # both now older than max_age

    relay = smtp_server(name="relay",
                        rcpt_replies={"bob@example.org": "550 5.1.1 no such user"})
    run_switchmail.write_config(make_config(tmp_path, native=route_for(relay),
                                            settings=settings))
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    log = r.log()
    for qid in originals:            # with the last error, as DESIGN §5 says
        assert f"{qid}: moved to failed/: expired (queue.max_age): 127.0.0.1 " \
               f"refused the connection" in log, log
    assert "a failure notice could not be delivered" in log

    (notice,) = relay.messages                  # the run is over: all of it
    assert notice.rcpt_tos == ["alice@example.org"]
    assert "Undelivered" in notice.header("Subject")
    body = notice.body_bytes().decode()
    assert "<q-report-1@example.org>" in body and "Quarterly report" in body
    assert "to@x.example" in body and "expired" in body
    assert "refused the connection" in body     # the last error
    # the expired messages themselves were never sent
    for m in relay.messages + relay.rejected:
        assert m.header("Subject") not in ("Quarterly report", "Weekly digest")
    # bob's notice was tried once, refused, and failed without a notice
    assert rcpt_lines(relay, "bob@example.org") == 1
    failed = spool_files(tmp_path, "failed")
    assert len(failed) == 3 and set(originals) < set(failed)
    assert spool_files(tmp_path, "new") == []

    sessions = len(relay.wait_closed(1))
    r = run_switchmail(["-q"])                  # nothing more, ever
    assert r.returncode == 0, r
    assert len(relay.sessions) == sessions and len(relay.messages) == 1
    assert spool_files(tmp_path, "failed") == failed
    assert mailq(run_switchmail).splitlines()[-1] == "0 messages waiting, 3 in failed/"


def test_expired_message_notice_goes_to_postmaster(tmp_path, smtp_server, run_switchmail,
                                                   closed_port):
    settings = expiry_settings(tmp_path, aliases={"postmaster": "admin@example.net"})
    cfg = make_config(tmp_path, native=native_at(closed_port), settings=settings)
    r = run_switchmail(["-i", "-f", "alice@example.org", "to@x.example"],
                       msg("Quarterly report", "q-report-2@example.org",
                           frm="alice@example.org"), cfg)
    queued(r)
    (qid,) = spool_files(tmp_path, "new")
    time.sleep(2.5)

    relay = smtp_server(name="relay")
    run_switchmail.write_config(make_config(tmp_path, native=route_for(relay),
                                            settings=settings))
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    assert f"{qid}: moved to failed/: expired" in r.log()
    (notice,) = relay.messages
    assert notice.rcpt_tos == ["admin@example.net"]
    assert "Undelivered" in notice.header("Subject")
    body = notice.body_bytes().decode()
    assert "<q-report-2@example.org>" in body and "Quarterly report" in body
    assert spool_files(tmp_path, "failed") == [qid]
    assert spool_files(tmp_path, "new") == []


# --------------------------------------------------------------------------
# 7b. a permanent refusal met in the queue: failed/ and a notice


def test_recipient_refused_later_fails_with_a_notice(tmp_path, smtp_server, run_switchmail):
    """One recipient refused, one deferred at submission: exit 0 (queued);
    once the deferred one is delivered the message moves to failed/ and
    the sender is told about the refused one, in the same run."""
    server = smtp_server(rcpt_replies={"later@x.example": "451 4.3.0 try later",
                                       "bad@x.example": "550 5.1.1 no such user"})
    r = run_switchmail(["-i", "-f", "app@example.org", "ok@x.example", "later@x.example",
                        "bad@x.example"], msg("Mixed outcome", "mixed@example.org"),
                       make_config(tmp_path, native=route_for(server)))
    queued(r)
    (qid,) = spool_files(tmp_path, "new")
    text = mailq(run_switchmail)
    assert "<later@x.example>" in text and "<bad@x.example>" not in text

    server.rcpt_replies = {"bad@x.example": "550 5.1.1 no such user"}
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    assert f"{qid}: moved to failed/: refused by the server" in r.log()
    assert spool_files(tmp_path, "failed") == [qid]
    assert spool_files(tmp_path, "new") == []
    ok, later, notice = server.messages
    assert (ok.rcpt_tos, later.rcpt_tos) == (["ok@x.example"], ["later@x.example"])
    assert notice.rcpt_tos == ["app@example.org"]
    assert "Undelivered" in notice.header("Subject")
    body = notice.body_bytes().decode()
    assert "<bad@x.example>" in body and "<mixed@example.org>" in body
    assert "<ok@x.example>" not in body and "<later@x.example>" not in body
    assert rcpt_lines(server, "bad@x.example") == 1   # a refusal is final


def test_refusal_notice_carries_the_server_reply(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(rcpt_replies={"bad@x.example": "550 5.1.1 no such user"})
    r = run_switchmail(["-odq", "-i", "-f", "app@example.org", "bad@x.example"],
                       msg("Refused later", "refused@example.org"),
                       make_config(tmp_path, native=route_for(server)))
    assert r.returncode == 0, r
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (notice,) = server.messages
    assert notice.rcpt_tos == ["app@example.org"]
    assert "550 5.1.1 no such user" in notice.body_bytes().decode()
    moved = next(line for line in r.log().splitlines() if "moved to failed/" in line)
    assert "550 5.1.1 no such user" in moved, moved


# --------------------------------------------------------------------------
# 8. queued mail follows the switch


def test_queued_mail_follows_the_switch(tmp_path, smtp_server, run_switchmail, pki):
    provider = smtp_server(mode="starttls", auth=USER, name="provider")
    native = smtp_server(name="native")
    down = free_port()
    connector_down = {"host": "localhost", "port": down, "encryption": "tls",
                      "username": USER[0], "password": USER[1], "from": USER[0],
                      "tls_ca_file": pki.ca, "timeout": 5}

    # connector on but down: queued; switched off: out through the native relay
    cfg = make_config(tmp_path, connector=connector_down, native=route_for(native),
                      active=True)
    for n in (1, 2):
        r = run_switchmail(["-t", "-i"], msg(f"Switch A{n}", frm='"Web Shop" <shop@example.org>',
                                            to="customer@example.net"), cfg)
        queued(r)
    assert native.sessions == []
    run_switchmail.write_config(make_config(tmp_path, connector=connector_down,
                                            native=route_for(native), active=False))
    r = run_ctl(run_switchmail, "queue", "flush")
    assert r.returncode == 0, r
    assert r.stderr == ""
    got = native.wait_for(2)
    assert sorted(m.header("Subject") for m in got) == ["Switch A1", "Switch A2"]
    for m in got:
        assert m.mail_from == NATIVE_FROM
        assert m.header("From") == f"Web Shop <{NATIVE_FROM}>"
        assert m.rcpt_tos == ["customer@example.net"]
    assert "route=native" in r.log()
    assert spool_files(tmp_path, "new") == []

    # and back: native relay off-line while in use, connector switched on
    native_down = native_at(free_port())
    cfg = make_config(tmp_path, connector=route_for(provider, host="localhost"),
                      native=native_down, active=False)
    for n in (1, 2):
        r = run_switchmail(["-t", "-i"], msg(f"Switch B{n}", frm='"Web Shop" <shop@example.org>',
                                            to="customer@example.net"), cfg)
        queued(r)
    assert provider.sessions == []
    run_switchmail.write_config(make_config(tmp_path, connector=route_for(provider, host="localhost"),
                                            native=native_down, active=True))
    r = run_ctl(run_switchmail, "queue", "flush")
    assert r.returncode == 0, r
    got = provider.wait_for(2)
    assert sorted(m.header("Subject") for m in got) == ["Switch B1", "Switch B2"]
    for m in got:
        assert m.mail_from == USER[0] and m.auth_user == USER[0] and m.tls
        assert m.header("From") == f"Web Shop <{USER[0]}>"
    assert len(native.messages) == 2
    assert spool_files(tmp_path, "new") == []


# --------------------------------------------------------------------------
# 9. queue run: only what is due


def test_queue_run_only_attempts_due_messages(tmp_path, smtp_server, run_switchmail,
                                              closed_port):
    settings = {"queue": {"dir": str(tmp_path / "spool"), "retry": [3600]}}
    r = run_switchmail(["-i", "to@x.example"], msg("Waits an hour"),
                       make_config(tmp_path, native=native_at(closed_port),
                                   settings=settings))
    log = queued(r)
    assert "next attempt in 3600 s" in log
    (late,) = spool_files(tmp_path, "new")

    server = smtp_server()
    run_switchmail.write_config(make_config(tmp_path, native=route_for(server),
                                            settings=settings))
    r = run_ctl(run_switchmail, "queue", "run")
    assert r.returncode == 0, r
    assert server.sessions == []                # not due: not even a connection
    assert spool_files(tmp_path, "new") == [late]

    r = run_switchmail(["-odq", "-i", "to@x.example"], msg("Due now"))
    assert r.returncode == 0, r                 # -odq: due at once
    r = run_ctl(run_switchmail, "queue", "run")
    assert r.returncode == 0, r
    (m,) = server.wait_for(1)
    assert m.header("Subject") == "Due now"
    assert spool_files(tmp_path, "new") == [late]
    assert "next in 59m" in mailq(run_switchmail) or "next in 60m" in mailq(run_switchmail)

    r = run_ctl(run_switchmail, "queue", "flush")
    assert r.returncode == 0, r
    assert [m.header("Subject") for m in server.wait_for(2)] == ["Due now", "Waits an hour"]
    assert spool_files(tmp_path, "new") == []


# --------------------------------------------------------------------------
# 10. -odq only queues


def test_odq_only_queues_then_q_delivers(tmp_path, smtp_server, run_switchmail):
    server = smtp_server()
    r = run_switchmail(["-odq", "-i", "to@x.example"], msg("Queue only", "odq@example.org"),
                       make_config(tmp_path, native=route_for(server)))
    assert r.returncode == 0, r
    assert r.stderr == ""
    (qid,) = spool_files(tmp_path, "new")
    assert f"{qid}: queued (-odq)" in r.log()
    assert server.sessions == []
    text = mailq(run_switchmail)
    assert listed(text) == [qid] and "attempt" not in text

    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = server.wait_for(1)
    assert m.header("Message-ID") == "<odq@example.org>"
    assert spool_files(tmp_path, "new") == []


# --------------------------------------------------------------------------
# 11. several messages over one session


@pytest.mark.parametrize("mode", ["plain", "implicit"])
def test_queue_run_sends_many_messages_over_one_session(tmp_path, smtp_server,
                                                         run_switchmail, mode):
    server = smtp_server(mode=mode)
    route = route_for(server, host="localhost") if mode != "plain" else route_for(server)
    cfg = make_config(tmp_path, native=route)
    for n in range(5):
        r = run_switchmail(["-odq", "-i", f"to{n}@x.example"], msg(f"Batch {n}"),
                           cfg if n == 0 else None)
        assert r.returncode == 0, r
    assert server.sessions == []

    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    got = server.wait_for(5)
    (s,) = server.wait_closed(1)
    assert s.messages == 5
    assert s.commands.count("MAIL") == 5 and s.commands.count("EHLO") == 1
    assert sorted(m.header("Subject") for m in got) == [f"Batch {n}" for n in range(5)]
    assert all(m.session_id == s.id for m in got)
    if mode == "implicit":
        assert s.tls_mode == "implicit" and all(m.tls for m in got)
    assert spool_files(tmp_path, "new") == []


# --------------------------------------------------------------------------
# 12. -qI and -qR


def test_qI_and_qR_select_messages(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(rcpt_replies={"d@one.example": "451 4.3.0 try later"})
    cfg = make_config(tmp_path, native=route_for(server))
    # m4: e@two delivered now, d@one pending
    r = run_switchmail(["-i", "d@one.example", "e@two.example"], msg("M4"), cfg)
    queued(r)
    (m4,) = spool_files(tmp_path, "new")
    ids = {"M4": m4}
    for name, to in (("M1", "a@one.example"), ("M2", "b@two.example"),
                     ("M3", "c@two.example")):
        before = set(spool_files(tmp_path, "new"))
        r = run_switchmail(["-odq", "-i", to], msg(name))
        assert r.returncode == 0, r
        (ids[name],) = set(spool_files(tmp_path, "new")) - before
    assert len(server.messages) == 1            # e@two.example's copy of M4
    server.rcpt_replies = None

    # -qI with a substring of M2's id (unique among the four)
    part = ids["M2"][-8:]
    assert sum(part in qid for qid in ids.values()) == 1
    r = run_switchmail([f"-qI{part}"])
    assert r.returncode == 0, r
    assert [m.header("Subject") for m in server.wait_for(2)[1:]] == ["M2"]
    assert spool_files(tmp_path, "new") == sorted([ids["M1"], ids["M3"], ids["M4"]])

    # -qR: a pending recipient in a matching domain (M4's two.example
    # recipient is done, so M4 is not one of them)
    r = run_switchmail(["-qRtwo.example"])
    assert r.returncode == 0, r
    assert [m.header("Subject") for m in server.wait_for(3)[2:]] == ["M3"]
    assert spool_files(tmp_path, "new") == sorted([ids["M1"], ids["M4"]])

    r = run_switchmail(["-qRone"])
    assert r.returncode == 0, r
    rest = server.wait_for(5)[3:]
    assert sorted(m.header("Subject") for m in rest) == ["M1", "M4"]
    assert spool_files(tmp_path, "new") == []
    assert len(server.messages) == 5
    for addr in ("a@one.example", "b@two.example", "c@two.example",
                 "d@one.example", "e@two.example"):
        assert sum(m.rcpt_tos.count(addr) for m in server.messages) == 1, addr


# --------------------------------------------------------------------------
# 13. many senders and runners while the relay goes up and down


SENDERS = 200
SENDER_WAVE = 20          # senders at once (a 2-core machine)


def test_concurrent_senders_and_runners_with_a_flapping_server(tmp_path, port_server,
                                                               run_switchmail):
    port = free_port()
    cfg = run_switchmail.write_config(make_config(tmp_path, native=native_at(port, timeout=3)))
    binary, ctl, env = str(switchmail_binary()), str(ctl_binary()), child_env()
    servers = []                  # every instance that ever listened
    rng = random.Random(20261128)
    stop_flapping = threading.Event()
    stop_runners = threading.Event()
    flushes = []
    problems = []

    def flap():
        n = 0
        try:
            while not stop_flapping.is_set():
                n += 1
                # mostly a good relay; sometimes one that is busy (421) or
                # drops the connection after the final dot (never replies)
                fault = rng.choice([{}, {}, {}, {"greeting": "421 4.3.2 busy"},
                                    {"drop_at": "DATA_END"}])
                server = port_server(port, name=f"up{n}", **fault)
                servers.append(server)
                stop_flapping.wait(rng.uniform(0.1, 0.4))
                server.stop()
                stop_flapping.wait(rng.uniform(0.05, 0.2))
        except Exception as exc:  # reported by the test thread
            problems.append(f"flapper: {exc!r}")

    def flusher():
        try:
            while not stop_runners.is_set():
                p = subprocess.run([ctl, "-C", str(cfg), "queue", "flush"],
                                   stdin=subprocess.DEVNULL, capture_output=True,
                                   env=env, cwd="/", timeout=120)
                flushes.append((p.returncode, p.stderr))
        except Exception as exc:  # reported by the test thread
            problems.append(f"flusher: {exc!r}")

    def sender(i):
        p = subprocess.Popen([binary, "-C", str(cfg), "-odi", "-i", f"rcpt{i % 7}@x.example"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd="/")
        out, err = p.communicate(msg(f"marker-{i:03d}", f"marker-{i:03d}@test.example"),
                                 timeout=120)
        return p.returncode, err

    flapper = threading.Thread(target=flap, daemon=True)
    runners = [threading.Thread(target=flusher, daemon=True) for _ in range(3)]
    flapper.start()
    for t in runners:
        t.start()
    try:
        with ThreadPoolExecutor(max_workers=SENDER_WAVE) as pool:
            results = list(pool.map(sender, range(SENDERS)))
    finally:
        stop_runners.set()
        for t in runners:
            t.join(120)
        stop_flapping.set()
        flapper.join(30)
    assert problems == []
    bad = [(i, rc, err) for i, (rc, err) in enumerate(results) if rc != 0 or err]
    assert bad == [], bad[:5]
    assert flushes and all(rc == 0 and err == b"" for rc, err in flushes), flushes[:5]
    assert len(servers) >= 2

    final = port_server(port, name="final")     # up for good
    servers.append(final)
    for _ in range(10):
        if not spool_files(tmp_path, "new"):
            break
        r = run_switchmail(["-q"], timeout=120)
        assert r.returncode == 0, r
    assert spool_files(tmp_path, "new") == []
    assert spool_files(tmp_path, "tmp") == []   # every sender exited cleanly
    assert spool_files(tmp_path, "failed") == []

    counts = collections.Counter(m.header("Subject") for s in servers for m in s.messages)
    expected = {f"marker-{i:03d}" for i in range(SENDERS)}
    missing = sorted(expected - set(counts))
    duplicated = {k: v for k, v in counts.items() if v > 1}
    strange = sorted(set(counts) - expected)
    assert (missing, duplicated, strange) == ([], {}, []), (
        f"{len(missing)} missing, {len(duplicated)} duplicated")
    # not vacuous: senders did queue, and the runners did deliver
    log = run_switchmail.log_path.read_text()
    queued_by_senders = log.count(": queued: ")
    sent_by_runners = len(re.findall(r"switchmailctl\[\d+\]: .*result=delivered", log))
    assert queued_by_senders > 0
    print(f"{len(servers)} server instances, {len(flushes)} flushes, "
          f"{sum(len(s.sessions) for s in servers)} sessions, {queued_by_senders} "
          f"queued by senders, {sent_by_runners} delivered by flushes")


# --------------------------------------------------------------------------
# 14. kill -9


def test_sender_killed_during_data_leaves_only_stale_tmp(tmp_path, smtp_server,
                                                        run_switchmail):
    stalled = smtp_server(stall_at="DATA_END", name="stalled")
    cfg = make_config(tmp_path, native=route_for(stalled, timeout=30))
    proc = run_switchmail.popen(["-i", "to@x.example"], cfg)
    end_input(proc, msg("Killed sender", "killed-sender@example.org"))
    wait_until(lambda: stalled.rejected, 20, "message held at the final dot")
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL     # the caller never got 0
    (debris,) = spool_files(tmp_path, "tmp")
    assert spool_files(tmp_path, "new") == []

    good = smtp_server(name="good")
    run_switchmail.write_config(make_config(tmp_path, native=route_for(good)))
    r = run_switchmail(["-q"])                  # not accepted: never sent
    assert r.returncode == 0, r
    assert spool_files(tmp_path, "tmp") == [debris]   # fresh: left alone
    assert good.sessions == []

    old = time.time() - 2 * 3600
    os.utime(tmp_path / "spool" / "tmp" / debris, (old, old))
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    for sub in ("tmp", "new", "failed"):
        assert spool_files(tmp_path, sub) == [], sub
    assert good.sessions == [] and stalled.messages == []


def test_runner_killed_mid_transfer_message_stays_and_goes_once(tmp_path, smtp_server,
                                                               run_switchmail):
    stalled = smtp_server(stall_at="DATA_END", name="stalled")
    cfg = make_config(tmp_path, native=route_for(stalled, timeout=30))
    r = run_switchmail(["-odq", "-i", "to@x.example"],
                       msg("Killed runner", "killed-runner@example.org"), cfg)
    assert r.returncode == 0, r
    (qid,) = spool_files(tmp_path, "new")

    proc = run_switchmail.popen(["-q"])
    end_input(proc)
    wait_until(lambda: stalled.rejected, 20, "message held at the final dot")
    text = mailq(run_switchmail)
    assert f"{qid}*" in text                    # locked by the runner
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert spool_files(tmp_path, "new") == [qid]
    text = mailq(run_switchmail)
    assert f"{qid} " in text and f"{qid}*" not in text   # lock released

    good = smtp_server(name="good")
    run_switchmail.write_config(make_config(tmp_path, native=route_for(good)))
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    (m,) = good.wait_for(1)
    assert m.header("Message-ID") == "<killed-runner@example.org>"
    assert spool_files(tmp_path, "new") == []
    r = run_switchmail(["-q"])
    assert len(good.messages) == 1
    assert stalled.messages == []               # no reply to its final dot


# --------------------------------------------------------------------------
# 15. progress on a terminal, silence otherwise


def test_flush_shows_progress_on_a_terminal_only(tmp_path, smtp_server, run_switchmail):
    server = smtp_server(rcpt_replies={"later@x.example": "451 4.3.0 try later",
                                       "bad@x.example": "550 5.1.1 no such user"})
    cfg = make_config(tmp_path, native=route_for(server))
    for n, to in enumerate(("ok@x.example", "later@x.example", "bad@x.example")):
        r = run_switchmail(["-odq", "-i", "-f", "app@example.org", to], msg(f"P{n}"),
                           cfg if n == 0 else None)
        assert r.returncode == 0, r
    cfg_path = run_switchmail.write_config(None)

    code, shown, out = run_on_pty([str(switchmail_binary()), "-C", str(cfg_path), "-q"])
    assert code == 0, shown
    assert out == b""
    for word in ("sent", "deferred", "failed", "of 4 waiting"):
        assert word in shown, shown
    # ok and the notice for bad sent, later deferred, bad failed
    assert SUMMARY_RE.findall(shown)[-1] == ("2", "1", "1", "4"), shown
    assert shown.endswith("\n")
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["app@example.org", "ok@x.example"]
    assert len(spool_files(tmp_path, "failed")) == 1 and len(spool_files(tmp_path, "new")) == 1

    # without a terminal: nothing on stderr, for either program
    r = run_switchmail(["-q"])
    assert r.returncode == 0, r
    assert r.stderr == "" and r.stdout == ""
    r = run_ctl(run_switchmail, "queue", "flush")
    assert r.returncode == 0, r
    assert r.stderr == "" and r.stdout == ""
    code, shown, _ = run_on_pty([str(ctl_binary()), "-C", str(cfg_path), "queue", "flush"])
    assert code == 0 and SUMMARY_RE.findall(shown)[-1] == ("0", "1", "0", "1"), shown


# --------------------------------------------------------------------------
# 16. a long queue


def test_mailq_lists_a_thousand_messages_and_flush_batches_them(tmp_path, smtp_server,
                                                                run_switchmail):
    count = 1000
    server = smtp_server(store_data=False)
    cfg = run_switchmail.write_config(make_config(tmp_path, native=route_for(server)))
    binary, env = str(switchmail_binary()), child_env()

    def queue_one(i):
        return subprocess.run([binary, "-C", str(cfg), "-odq", "-i", f"r{i:04d}@x.example"],
                              input=msg(f"Long queue {i}"), capture_output=True,
                              env=env, cwd="/", timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(queue_one, range(count)))
    assert [p for p in done if p.returncode != 0 or p.stderr] == []
    ids = spool_files(tmp_path, "new")
    assert len(ids) == count

    text = mailq(run_switchmail)
    assert listed(text) == ids                  # all of them, oldest first
    assert text.splitlines()[-1] == f"-- {count} messages waiting, 0 in failed/"
    r = run_ctl(run_switchmail, "queue", "list")
    assert r.returncode == 0 and r.stdout == text, r
    assert server.sessions == []

    r = run_switchmail(["-q"], timeout=120)     # 100 messages per session
    assert r.returncode == 0, r
    server.wait_for(count, timeout=60)
    sessions = server.wait_closed(count // 100)
    assert [s.messages for s in sessions] == [100] * (count // 100)
    got = sorted(m.rcpt_tos[0] for m in server.messages)
    assert got == [f"r{i:04d}@x.example" for i in range(count)]
    assert spool_files(tmp_path, "new") == []
