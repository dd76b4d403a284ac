"""End-to-end: sendmail -bs (the SMTP dialogue Symfony Mailer and Laravel
speak on stdin/stdout), -bv, -bi, and the mailq/newaliases personalities.

Each -bs test asserts every reply code and what the SMTP server behind
switchmail received.  Issue 6.
"""
import queue
import threading

import pytest

from conftest import make_config, route_for

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_CONFIG = 64, 65, 67, 78

ALLOWED = ["*@example.org"]        # the callers' MAIL FROM is kept


def native_config(tmp_path, server, aliases=None, **route):
    settings = {"aliases": aliases} if aliases else None
    return make_config(tmp_path, native=route_for(server, allowed_senders=ALLOWED, **route),
                       settings=settings)


def replies(text: str):
    """The replies in a transcript: one (code, [lines]) per reply, a
    multi-line reply being grouped up to its "ddd " line."""
    out, lines = [], []
    for line in text.split("\r\n")[:-1]:
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            out.append((int(line[:3]), lines))
            lines = []
    assert not lines, f"unterminated reply {lines}"
    return out


def codes(text: str):
    return [code for code, _ in replies(text)]


def spool_files(tmp_path, sub):
    d = tmp_path / "spool" / sub
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def stuff(body: bytes) -> bytes:
    """Dot-stuffing as an SMTP client does it (RFC 5321 4.5.2)."""
    return b"\r\n".join(b"." + l if l.startswith(b".") else l
                        for l in body.split(b"\r\n"))


# Two messages as Symfony sends them: CRLF, dot-stuffed, "." line.
BODY1 = b"first line\r\n.hidden dot\r\n..two dots\r\n.\r\nlast\r\n"
MSG1 = (b"From: App <app@example.org>\r\nTo: a@x.example\r\nSubject: one\r\n"
        b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <one@example.org>\r\n"
        b"\r\n" + BODY1)
BODY2 = b"second message\r\n"
MSG2 = b"From: app@example.org\r\nSubject: two\r\n\r\n" + BODY2


def symfony_script(eol=b"\r\n"):
    """The commands and data of a Symfony session, one item per write (as
    Symfony waits for each reply), with eol as line ending."""
    def lines(*ls):
        return [l + eol for l in ls]
    data1 = stuff(MSG1).replace(b"\r\n", eol) + b"." + eol
    data2 = stuff(MSG2).replace(b"\r\n", eol) + b"." + eol
    return (lines(b"HELO [127.0.0.1]", b"MAIL FROM:<app@example.org>",
                  b"RCPT TO:<a@x.example>", b"DATA") + [data1] +
            lines(b"MAIL FROM:<app@example.org>", b"RCPT TO:<b@x.example>",
                  b"RCPT TO:<root>", b"DATA") + [data2] + lines(b"QUIT"))


SYMFONY_CODES = [220, 250, 250, 250, 354, 250, 250, 250, 250, 354, 250, 221]


def assert_symfony_messages(server):
    one, two = server.wait_for(2)
    assert one.mail_from == "app@example.org"
    assert one.rcpt_tos == ["a@x.example"]
    assert one.body_bytes() == BODY1
    assert one.header("Subject") == "one"
    assert one.header("Message-ID") == "<one@example.org>"
    assert two.mail_from == "app@example.org"
    assert two.rcpt_tos == ["b@x.example", "admin@example.fr"]
    assert two.body_bytes() == BODY2
    assert two.header("Message-ID")            # added, as for -bm


class Dialogue:
    """A lock-step -bs session: write, then read one whole reply."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def reply(self, timeout=30):
        """(code, [lines]) of the next reply; None at end of output."""
        lines = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                assert not lines, lines
                return None
            assert line.endswith(b"\r\n"), line
            text = line[:-2].decode()
            lines.append(text)
            if text[3:4] != "-":
                return int(text[:3]), lines

    def expect(self, code, timeout=30):
        got = self.reply(timeout)
        assert got is not None and got[0] == code, (code, got)
        return " ".join(got[1])

    def send(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_input(self):
        self.proc.stdin.close()
        # The runner's teardown calls communicate(), which would flush the
        # closed pipe: let it see none.
        self.proc.stdin = None

    def finish(self, timeout=30):
        rc = self.proc.wait(timeout=timeout)
        return rc, self.proc.stderr.read()


# --------------------------------------------------------------------------
# Symfony and Laravel


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_symfony_session_pipelined(tmp_path, smtp_server, run_switchmail, eol):
    native = smtp_server()
    cfg = native_config(tmp_path, native, aliases={"root": "admin@example.fr"})
    r = run_switchmail(["-bs"], b"".join(symfony_script(eol)), cfg)
    assert r.returncode == 0, r
    assert r.stderr == ""
    assert codes(r.stdout) == SYMFONY_CODES, r.stdout
    assert r.stdout.startswith("220 ") and " switchmail ESMTP\r\n" in r.stdout
    assert_symfony_messages(native)
    assert spool_files(tmp_path, "tmp") == [] and spool_files(tmp_path, "new") == []


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_symfony_session_lock_step(tmp_path, smtp_server, run_switchmail, eol):
    native = smtp_server()
    cfg = native_config(tmp_path, native, aliases={"root": "admin@example.fr"})
    d = Dialogue(run_switchmail.popen(["-bs"], cfg))
    d.expect(220)                            # unprompted, before we write
    for data, code in zip(symfony_script(eol), SYMFONY_CODES[1:]):
        d.send(data)
        text = d.expect(code)
        if data.endswith(b"." + eol) and code == 250:
            assert "delivered" in text
            assert native.messages            # 250 only once it is there
    assert d.reply() is None                  # closed after 221
    rc, err = d.finish()
    assert rc == 0 and err == b""
    assert_symfony_messages(native)


def test_laravel_bs_with_stray_i(tmp_path, smtp_server, run_switchmail):
    """Laravel runs "sendmail -bs -i": SMTP's dot rules still apply."""
    native = smtp_server()
    body = b"a\r\n.\r\nnot the end: the client stuffed it\r\n"
    script = (b"EHLO laravel.test\r\nMAIL FROM:<app@example.org>\r\n"
              b"RCPT TO:<a@x.example>\r\nDATA\r\n" + stuff(b"Subject: s\r\n\r\n" + body) +
              b".\r\nQUIT\r\n")
    r = run_switchmail(["-bs", "-i"], script, native_config(tmp_path, native))
    assert r.returncode == 0 and r.stderr == "", r
    assert codes(r.stdout) == [220, 250, 250, 250, 354, 250, 221]
    (m,) = native.wait_for(1)
    assert m.body_bytes() == body


def test_ehlo_extensions_and_replies(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    script = (b"EHLO client.example\r\nNOOP\r\nVRFY root\r\nHELP\r\nEXPN list\r\n"
              b"RSET\r\nquit\r\n")
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    assert r.returncode == 0, r
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 252, 214, 502, 250, 221]
    ehlo = rs[1][1]
    assert [l[4:] for l in ehlo[1:]] == ["PIPELINING", "8BITMIME", "SIZE 1073741824",
                                         "ENHANCEDSTATUSCODES"]
    assert not any("AUTH" in l or "STARTTLS" in l for l in ehlo)
    for code, lines in rs[2:]:               # enhanced codes after EHLO
        for line in lines:
            assert line[4:5] in ("2", "5") and line[5:6] == ".", line
    assert "MAIL FROM:<address>" in " ".join(rs[4][1])
    assert native.sessions == []             # nothing was sent anywhere


def test_mail_without_helo_null_sender_and_params(tmp_path, smtp_server, run_switchmail):
    """MAIL without HELO is accepted (as Postfix does); <> is the null
    sender, replaced by the route's own address; BODY= reaches the relay."""
    native = smtp_server()
    script = (b"MAIL FROM:<> BODY=8BITMIME SIZE=100\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: s\r\n\r\nr\xc3\xa9sum\xc3\xa9\r\n.\r\nQUIT\r\n")
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    assert codes(r.stdout) == [220, 250, 250, 354, 250, 221], r
    (m,) = native.wait_for(1)
    assert m.mail_from == "no-reply@platform.example"
    assert "BODY=8BITMIME" in m.mail_options
    assert m.body_bytes() == "résumé\r\n".encode()


def test_sender_policy_like_f(tmp_path, smtp_server, run_switchmail):
    """A MAIL FROM outside allowed_senders is replaced, as -f would be."""
    native = smtp_server()
    script = (b"HELO x\r\nMAIL FROM:<someone@elsewhere.example>\r\nRCPT TO:<a@x.example>\r\n"
              b"DATA\r\nFrom: someone@elsewhere.example\r\n\r\nb\r\n.\r\nQUIT\r\n")
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    assert codes(r.stdout) == [220, 250, 250, 250, 354, 250, 221], r
    (m,) = native.wait_for(1)
    assert m.mail_from == "no-reply@platform.example"
    assert m.raw_header("Reply-To") == "<someone@elsewhere.example>"
    assert "caller <someone@elsewhere.example>" in r.log()


def test_odq_queues_without_trying(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    script = (b"HELO x\r\nMAIL FROM:<app@example.org>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: s\r\n\r\nb\r\n.\r\nQUIT\r\n")
    r = run_switchmail(["-bs", "-odq"], script, native_config(tmp_path, native))
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 354, 250, 221], r
    assert "queued" in rs[5][1][0]
    assert len(spool_files(tmp_path, "new")) == 1
    assert native.sessions == []


# --------------------------------------------------------------------------
# Bad input


def test_bad_commands_and_the_session_survives(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    steps = [
        (b"HELO x", 250),
        (b"FROB something", 500),                 # unknown verb
        (b"RCPT TO:<a@x.example>", 503),          # RCPT before MAIL
        (b"DATA", 503),                           # DATA without MAIL/RCPT
        (b"MAIL", 501),                           # no argument
        (b"MAIL TO:<a@x.example>", 501),          # wrong keyword
        (b"MAIL FROM:<a@x.example", 501),         # no closing >
        (b"MAIL FROM:<bad@@x.example>", 501),     # bad sender address
        (b"MAIL FROM:<app@example.org> XYZ=1", 555),   # unknown parameter
        (b"MAIL FROM:<app@example.org> BODY=9BIT", 501),
        (b"MAIL FROM:<app@example.org> SIZE=99999999999999", 552),
        (b"X" * 600, 500),                        # over 512 octets
        (b"\x00\xff\xfe garbage", 500),           # NUL and garbage bytes
        (b"MAIL FROM:<app@example.org>", 250),
        (b"MAIL FROM:<app@example.org>", 503),    # nested MAIL
        (b"DATA", 503),                           # DATA without RCPT
        (b"RCPT TO:<>", 501),
        (b"RCPT TO:<a b@x.example>", 501),        # bad recipient address
        (b"RCPT TO:<a@x.example> NOTIFY=NEVER", 555),
        (b"RCPT TO:<a@x.example>", 250),
        (b"RSET x", 501),
        (b"DATA", 354),
    ]
    script = b"".join(c + b"\r\n" for c, _ in steps)
    script += b"Subject: after the errors\r\n\r\nfine\r\n.\r\nQUIT\r\n"
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    assert r.returncode == 0 and r.stderr == "", r
    rs = replies(r.stdout)
    got = [c for c, _ in rs]
    assert got == [220] + [c for _, c in steps] + [250, 221], r.stdout
    long_line = rs[1 + 11][1][0]
    assert long_line.startswith("500 5.5.2") and "too long" in long_line
    for code, (line,) in rs[1:len(steps)]:
        if code >= 500:
            assert line[4:6] == "5." and line[3] == " ", line
    (m,) = native.wait_for(1)
    assert m.body_bytes() == b"fine\r\n"


def test_message_with_nul_refused_session_goes_on(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    script = (b"HELO x\r\nMAIL FROM:<app@example.org>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: s\r\n\r\nbad \x00 byte\r\n.\r\n"
              b"MAIL FROM:<app@example.org>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: s\r\n\r\ngood\r\n.\r\nQUIT\r\n")
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 354, 554, 250, 250, 354, 250, 221], r
    assert rs[5][1][0].startswith("554 5.6.0") and "NUL" in rs[5][1][0]
    (m,) = native.wait_for(1)
    assert m.body_bytes() == b"good\r\n"
    assert spool_files(tmp_path, "tmp") == []


def test_too_many_bad_commands_ends_the_session(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    r = run_switchmail(["-bs"], b"BOGUS\r\n" * 1010 + b"NOOP\r\n",
                       native_config(tmp_path, native))
    assert r.returncode == 0, r
    got = codes(r.stdout)
    assert got == [220] + [500] * 1001 + [421]
    assert replies(r.stdout)[-1][1][0].startswith("421 4.7.0")


def test_unknown_local_recipient(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native), settings={"default_domain": None})
    r = run_switchmail(["-bs"], b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<nobody>\r\n"
                       b"RCPT TO:<a@x.example>\r\nQUIT\r\n", cfg)
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 550, 250, 221], r
    assert rs[3][1][0].startswith("550 5.1.1 <nobody>") and "default_domain" in rs[3][1][0]


# --------------------------------------------------------------------------
# Nothing acknowledged is lost, nothing incomplete is acknowledged


def test_input_cut_inside_data_lock_step(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    d = Dialogue(run_switchmail.popen(["-bs"], native_config(tmp_path, native)))
    d.expect(220)
    for cmd, code in [(b"HELO x", 250), (b"MAIL FROM:<app@example.org>", 250),
                      (b"RCPT TO:<a@x.example>", 250), (b"DATA", 354)]:
        d.send(cmd + b"\r\n")
        d.expect(code)
    d.send(b"Subject: one\r\n\r\nacknowledged\r\n.\r\n")
    d.expect(250)
    for cmd, code in [(b"MAIL FROM:<app@example.org>", 250),
                      (b"RCPT TO:<b@x.example>", 250), (b"DATA", 354)]:
        d.send(cmd + b"\r\n")
        d.expect(code)
    d.send(b"Subject: two\r\n\r\nthis one is cut off in the mid")
    d.close_input()
    assert d.reply() is None                  # no reply to a partial message
    rc, err = d.finish()
    assert rc == 0 and err == b""
    (m,) = native.wait_for(1)
    assert m.body_bytes() == b"acknowledged\r\n"
    assert spool_files(tmp_path, "tmp") == [] and spool_files(tmp_path, "new") == []
    assert "partial message was discarded" in run_switchmail.log_path.read_text()


@pytest.mark.parametrize("tail", [b"", b"almost\r\n", b"almost\r\n.", b"x\r\n.\r"])
def test_input_cut_inside_data_pipelined(tmp_path, smtp_server, run_switchmail, tail):
    native = smtp_server()
    script = (b"HELO x\r\nMAIL FROM:<app@example.org>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: one\r\n\r\nkept\r\n.\r\n"
              b"MAIL FROM:<app@example.org>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"
              b"Subject: two\r\n\r\n" + tail)
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    assert r.returncode == 0 and r.stderr == "", r
    assert codes(r.stdout) == [220, 250, 250, 250, 354, 250, 250, 250, 354], r.stdout
    (m,) = native.wait_for(1)
    assert m.body_bytes() == b"kept\r\n"
    assert spool_files(tmp_path, "tmp") == [] and spool_files(tmp_path, "new") == []


def test_deferred_message_gets_250_once_queued(tmp_path, closed_port, run_switchmail):
    cfg = make_config(tmp_path, native={"host": "127.0.0.1", "port": closed_port,
                                        "encryption": "none", "from": "a@b.example"})
    r = run_switchmail(["-bs"], b"HELO x\r\nMAIL FROM:<app@example.org>\r\n"
                       b"RCPT TO:<a@x.example>\r\nDATA\r\nSubject: s\r\n\r\nb\r\n.\r\nQUIT\r\n",
                       cfg)
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 354, 250, 221], r
    assert "queued" in rs[5][1][0]
    (queued,) = spool_files(tmp_path, "new")
    assert queued in rs[5][1][0]              # the reply names the queue id
    assert spool_files(tmp_path, "tmp") == []
    listing = run_switchmail([], argv0="mailq")  # the personality by name
    assert listing.returncode == 0, listing
    assert queued in listing.stdout and "<a@x.example>" in listing.stdout
    assert "refused the connection" in listing.stdout


def test_spool_unwritable_is_451(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native),
                      settings={"queue": {"dir": "/proc/switchmail-no-spool"}})
    r = run_switchmail(["-bs"], b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\n"
                       b"DATA\r\nRSET\r\nQUIT\r\n", cfg)
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 451, 250, 221], r
    assert rs[4][1][0].startswith("451 4.3.0")
    assert native.sessions == []


# --------------------------------------------------------------------------
# Refusals from the server behind switchmail


def session_one(rcpts):
    cmds = b"HELO x\r\nMAIL FROM:<app@example.org>\r\n"
    cmds += b"".join(b"RCPT TO:<" + a.encode() + b">\r\n" for a in rcpts)
    return cmds + b"DATA\r\nSubject: s\r\n\r\nb\r\n.\r\n"


def test_every_recipient_refused_is_5xx_at_end_of_data(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(rcpt_replies={"bad@x.example": "550 5.1.1 no such user"})
    script = (session_one(["bad@x.example"]) + b"RSET\r\n" +
              session_one(["good@x.example"])[len(b"HELO x\r\n"):] + b"QUIT\r\n")
    r = run_switchmail(["-bs"], script, native_config(tmp_path, native))
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 354, 550, 250,
                                  250, 250, 354, 250, 221], r
    assert rs[5][1][0].startswith("550 5.1.1 ") and "no such user" in rs[5][1][0]
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["good@x.example"]
    assert spool_files(tmp_path, "new") == []    # the client was told: no notice


def test_some_recipients_refused_is_250_and_a_notice(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(rcpt_replies={"bad@x.example": "550 5.1.1 no such user"})
    r = run_switchmail(["-bs"], session_one(["good@x.example", "bad@x.example"]) + b"QUIT\r\n",
                       native_config(tmp_path, native))
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 250, 354, 250, 221], r
    assert "1 recipient(s) refused" in rs[6][1][0] and "no such user" in rs[6][1][0]
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["good@x.example"]
    (notice,) = spool_files(tmp_path, "new")      # the failure notice, queued
    listing = run_switchmail([], argv0="mailq")
    assert notice in listing.stdout and "<app@example.org>" in listing.stdout


def test_message_refused_at_data(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(data_reply="552 5.3.4 message too big")
    r = run_switchmail(["-bs"], session_one(["a@x.example"]) + b"QUIT\r\n",
                       native_config(tmp_path, native))
    rs = replies(r.stdout)
    assert [c for c, _ in rs] == [220, 250, 250, 250, 354, 552, 221], r
    assert rs[5][1][0].startswith("552 5.3.4 ") and "message too big" in rs[5][1][0]


# --------------------------------------------------------------------------
# Start-up: nothing on stderr


def test_nothing_on_stderr_at_start_even_with_warnings(tmp_path, smtp_server, run_switchmail):
    """Symfony fails on any stderr output: config warnings go to the log."""
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native, port=465))   # none on 465: warned
    d = Dialogue(run_switchmail.popen(["-bs"], cfg))
    d.expect(220)
    d.send(b"QUIT\r\n")
    d.expect(221)
    rc, err = d.finish()
    assert rc == 0 and err == b""
    assert "465" in run_switchmail.log_path.read_text()


# --------------------------------------------------------------------------
# -bv, -bi, newaliases


def routes_config(tmp_path, **extra):
    return make_config(
        tmp_path,
        connector={"host": "smtp.example.fr", "port": 465, "encryption": "ssl",
                   "username": "contact@example.fr", "password": "s3cret",
                   "from": "contact@example.fr"},
        native={"host": "localhost", "port": 25, "encryption": "none",
                "from": "no-reply@platform.example"},
        settings={"aliases": {"root": "admin@example.fr", "postmaster": "root",
                              "www-data": "dev@example.fr, ops@example.fr"}, **extra})


def test_bv_shows_routing_without_sending(tmp_path, run_switchmail):
    r = run_switchmail(["-bv", "root", "bob,carol@x.example", "WWW-DATA"],
                       b"Subject: secret content\n\nnever read\n", routes_config(tmp_path))
    assert r.returncode == 0, r
    assert r.stderr == ""
    via = ", via connector smtp.example.fr:465 ssl, sender contact@example.fr"
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    assert lines[0].startswith("root -> admin@example.fr (alias)" + via)
    assert lines[1].startswith("bob -> bob@example.org (default domain)" + via)
    assert lines[2].startswith("carol@x.example -> carol@x.example" + via)
    assert lines[3].startswith("WWW-DATA -> dev@example.fr, ops@example.fr (alias)" + via)
    # the caller (the login name, no -f) is not an allowed sender: said so
    assert lines[0].endswith(" is not in connector.allowed_senders)")
    assert "secret" not in r.stdout
    assert not (tmp_path / "spool" / "tmp").exists() or spool_files(tmp_path, "tmp") == []


def test_bv_sender_kept_when_allowed(tmp_path, run_switchmail):
    cfg = make_config(tmp_path, native={"host": "localhost", "port": 25, "encryption": "none",
                                        "from": "no-reply@platform.example",
                                        "allowed_senders": ALLOWED})
    r = run_switchmail(["-bv", "-f", "app@example.org", "a@x.example"], b"", cfg)
    assert r.returncode == 0, r
    assert r.stdout == ("a@x.example -> a@x.example, via native localhost:25 none, "
                        "sender app@example.org\n")


def test_bv_errors(tmp_path, run_switchmail):
    cfg = routes_config(tmp_path, default_domain=None)
    r = run_switchmail(["-bv", "bob"], b"", cfg)
    assert r.returncode == EX_NOUSER, r
    assert "bob" in r.stderr and "default_domain" in r.stderr and r.stdout == ""
    r = run_switchmail(["-bv", "a@@x.example"], b"")
    assert r.returncode == EX_DATAERR, r
    assert "more than one @" in r.stderr
    r = run_switchmail(["-bv", "root", "bob", "a@@x.example"], b"")
    assert r.returncode == EX_DATAERR, r
    assert r.stdout.startswith("root -> admin@example.fr (alias)")
    assert r.stderr.count("\n") == 3 and "2 of 3 recipients" in r.stderr
    r = run_switchmail(["-bv"], b"")
    assert r.returncode == EX_USAGE, r


def test_bi_and_newaliases(tmp_path, run_switchmail):
    cfg = routes_config(tmp_path)
    for args, argv0, prog in [(["-bi"], None, "switchmail"), ([], "newaliases", "newaliases")]:
        r = run_switchmail(args, b"", cfg, argv0=argv0)
        assert r.returncode == 0, r
        assert r.stdout == (f"{prog}: 3 aliases OK (root, postmaster, www-data); aliases "
                            f"live in {r.config_path}, no database to rebuild\n")
        assert r.stderr == ""


def test_bi_reports_a_loop_and_an_unresolvable_name(tmp_path, run_switchmail):
    cfg = make_config(tmp_path, native={"host": "localhost", "from": "a@b.example",
                                        "encryption": "none"},
                      settings={"default_domain": None,
                                "aliases": {"a": "b", "b": "a", "c": "nobody", "d": "x@y.example"}})
    r = run_switchmail(["-bi"], b"", cfg)
    assert r.returncode == EX_CONFIG, r
    lines = r.stderr.splitlines()
    assert len(lines) == 3, r.stderr
    assert "aliases.a" in lines[0] and "alias loop" in lines[0]
    assert "aliases.c" in lines[2] and "nobody" in lines[2]
    assert all(str(r.config_path) in l for l in lines)
    assert r.stdout == ""
