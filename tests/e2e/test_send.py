"""End-to-end: the built switchmail against real SMTP servers on 127.0.0.1.

Each test asserts what the server actually received (envelope, headers, body
bytes), the exit code, and the key words of stderr.  Issue 2: the send path
through the connector and the native relay.
"""
import os
import subprocess

import pytest

from conftest import make_config, queued, route_for, switchmail_binary

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 64, 65, 67, 69
EX_TEMPFAIL, EX_CONFIG = 75, 78

MSG = (b"From: \"Web Shop\" <shop@example.org>\n"
       b"To: Customer <customer@example.net>\n"
       b"Subject: Order 1001\n"
       b"\n"
       b"Thank you for your order.\n")



@pytest.fixture
def routes(smtp_server):
    """A provider (STARTTLS + AUTH) and a native relay (plain)."""
    provider = smtp_server(mode="starttls", auth=("contact@example.org", "s3cret"),
                           name="provider")
    native = smtp_server(name="native")
    return provider, native


def config_for(tmp_path, provider, native, active=True, **conn):
    return make_config(tmp_path, connector=route_for(provider, host="localhost", **conn),
                       native=route_for(native), active=active)


def test_connector_on_delivers_through_provider_with_auth(tmp_path, routes, run_switchmail):
    provider, native = routes
    r = run_switchmail(["-t", "-i"], MSG, config_for(tmp_path, provider, native))
    assert r.returncode == 0, r
    assert r.stderr == ""
    (m,) = provider.wait_for(1)
    assert m.mail_from == "contact@example.org"
    assert m.rcpt_tos == ["customer@example.net"]
    assert m.auth_user == "contact@example.org"
    assert m.tls and m.tls_version in ("TLSv1.2", "TLSv1.3")
    assert m.sni == "localhost"
    assert m.header("From") == "Web Shop <contact@example.org>"
    assert m.raw_header("Reply-To") == "<shop@example.org>"
    assert m.body_bytes() == b"Thank you for your order.\r\n"
    assert native.messages == []


def test_connector_off_uses_native_relay(tmp_path, routes, run_switchmail):
    provider, native = routes
    r = run_switchmail(["-t", "-i"], MSG, config_for(tmp_path, provider, native, active=False))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.mail_from == "no-reply@platform.example"
    assert m.header("From") == "Web Shop <no-reply@platform.example>"
    assert provider.messages == [] and provider.sessions == []


def test_allowed_sender_is_kept(tmp_path, routes, run_switchmail):
    provider, native = routes
    cfg = config_for(tmp_path, provider, native, allowed_senders=["*@example.org"])
    r = run_switchmail(["-t", "-i", "-f", "shop@example.org"], MSG, cfg)
    assert r.returncode == 0, r
    (m,) = provider.wait_for(1)
    assert m.mail_from == "shop@example.org"
    assert m.raw_header("From") == '"Web Shop" <shop@example.org>'
    assert m.header("Reply-To") is None
    assert "caller" not in r.log()


def test_t_with_bcc_and_argument_recipients(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    msg = (b"From: a@example.org\nTo: \"Doe, John\" <john@x.example>, team: b@x.example;\n"
           b"Cc: c@x.example\nBcc: hidden@y.example\nSubject: s\n\nbody\n")
    r = run_switchmail(["-t", "-i", "extra@z.example"], msg,
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert sorted(m.rcpt_tos) == sorted(["john@x.example", "b@x.example", "c@x.example",
                                         "hidden@y.example", "extra@z.example"])
    assert b"hidden" not in m.data and b"Bcc" not in m.data


def test_bcc_never_transmitted_without_t(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    msg = b"From: a@example.org\nBcc: hidden@y.example\nSubject: s\n\nbody\n"
    r = run_switchmail(["-i", "to@x.example"], msg, make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["to@x.example"]
    assert b"hidden" not in m.data


@pytest.mark.parametrize("args", [
    ["a@x.example,b@x.example"],          # cron MAILTO
    ["a@x.example,", "b@x.example"],      # fail2ban "a@x, b@y" split by the shell
    ["a@x.example, b@x.example"],
    ["--", "a@x.example", "b@x.example"],
])
def test_comma_lists_and_double_dash(tmp_path, smtp_server, run_switchmail, args):
    native = smtp_server()
    r = run_switchmail(["-i", *args], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["a@x.example", "b@x.example"]


def test_cron_command_line_aliases_and_fullname(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native),
                      settings={"aliases": {"root": "admin@example.fr, ops@example.fr"}})
    msg = "Subject: Cron <root@host> backup\nContent-Type: text/plain; charset=UTF-8\n\nrésumé\n"
    r = run_switchmail(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root", "www-data"],
                       msg.encode(), cfg)
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["admin@example.fr", "ops@example.fr", "www-data@example.org"]
    assert "BODY=8BITMIME" in m.mail_options
    assert m.header("From") == "CronDaemon <no-reply@platform.example>"
    assert m.body_bytes() == "résumé\r\n".encode()


def test_f_and_F(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native, allowed_senders=["*@example.org"]))
    r = run_switchmail(["-f", "app@example.org", "-F", "The App", "to@x.example"],
                       b"Subject: s\n\nb\n", cfg)
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.mail_from == "app@example.org"
    assert m.header("From") == "The App <app@example.org>"
    # -fADDR and -FNAME attached forms
    r = run_switchmail(["-fapp2@example.org", "-FName2", "to@x.example"], b"Subject: t\n\nb\n")
    assert r.returncode == 0, r
    m = native.wait_for(2)[1]
    assert m.mail_from == "app2@example.org"
    assert m.header("From") == "Name2 <app2@example.org>"


def test_dot_lines_without_and_with_i(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native))
    body = b"Subject: s\n\nline\n..two dots\n.\nafter\n"
    r = run_switchmail(["to@x.example"], body, cfg)
    assert r.returncode == 0, r
    r = run_switchmail(["-i", "to@x.example"], body)
    assert r.returncode == 0, r
    first, second = native.wait_for(2)
    assert first.body_bytes() == b"line\r\n..two dots\r\n"
    assert second.body_bytes() == b"line\r\n..two dots\r\n.\r\nafter\r\n"


def test_bare_lf_mixed_endings_and_no_final_newline(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\r\n\nlf\ncrlf\r\ncrcrlf\r\r\nend",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.body_bytes() == b"lf\r\ncrlf\r\ncrcrlf\r\nend\r\n"
    assert b"\r\r" not in m.data
    assert not any(s.bare_lf for s in native.sessions)


def test_eight_bit_body_untouched(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    body = "Subject: s\nContent-Type: text/plain; charset=UTF-8\n\nÀ bientôt, 東京\n".encode()
    r = run_switchmail(["-i", "to@x.example"], body, make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert "BODY=8BITMIME" in m.mail_options
    assert m.body_bytes() == "À bientôt, 東京\r\n".encode()


def test_missing_date_message_id_from_added(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    r = run_switchmail(["-i", "to@x.example"], b"Subject: bare\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.header("Date") and m.header("Message-ID").startswith("<")
    assert m.raw_header("From") == "<no-reply@platform.example>"
    assert m.header("Message-ID") in r.log()


def test_no_recipient_is_usage_error(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    cfg = make_config(tmp_path, native=route_for(native))
    r = run_switchmail(["-i"], b"Subject: s\n\nb\n", cfg)
    assert r.returncode == EX_USAGE
    assert "no recipients" in r.stderr
    r = run_switchmail(["-t", "-i"], b"Subject: s\n\nb\n")
    assert r.returncode == EX_USAGE
    assert "To:" in r.stderr
    assert native.sessions == []


def test_unknown_option_is_usage_error(tmp_path, run_switchmail):
    r = run_switchmail(["-Z", "to@x.example"], b"x\n", make_config(tmp_path, native={
        "host": "127.0.0.1", "from": "a@b.example", "encryption": "none"}))
    assert r.returncode == EX_USAGE
    assert "-Z" in r.stderr and r.stderr.count("\n") == 1


def test_recipient_refused_others_delivered(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(rcpt_replies={"bad@x.example": "550 5.1.1 no such user"})
    r = run_switchmail(["-i", "good@x.example", "bad@x.example"], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == EX_NOUSER, r
    assert "bad@x.example" in r.stderr and "550 5.1.1 no such user" in r.stderr
    assert "does not exist" in r.stderr                # the hint for 5.1.1
    assert "other recipients" in r.stderr
    (m,) = native.wait_for(1)
    assert m.rcpt_tos == ["good@x.example"]
    assert "result=refused" in r.log() and "result=delivered" in r.log()


def test_every_recipient_refused(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(rcpt_replies={"bad@x.example": "550 5.1.1 no such user"})
    r = run_switchmail(["-i", "bad@x.example"], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == EX_NOUSER, r
    assert native.messages == []


def test_message_refused_at_mail_and_data(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(mail_reply="550 5.7.1 sender rejected")
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == EX_UNAVAILABLE, r
    assert "550 5.7.1 sender rejected" in r.stderr
    native2 = smtp_server(data_reply="552 5.3.4 message too big")
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native2)))
    assert r.returncode == EX_UNAVAILABLE, r
    assert "552 5.3.4" in r.stderr


def test_temporary_refusal_is_tempfail(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(rcpt_replies={"to@x.example": "451 4.3.0 try later"})
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    text = queued(r)
    assert "451 4.3.0 try later" in text


def test_server_down(tmp_path, closed_port, run_switchmail):
    cfg = make_config(tmp_path, native={"host": "127.0.0.1", "port": closed_port,
                                        "encryption": "none", "from": "a@b.example"})
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n", cfg)
    text = queued(r)
    assert "refused the connection" in text and str(closed_port) in text

def test_auth_refused_stops_before_mail(tmp_path, smtp_server, run_switchmail):
    reply = ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
             "is disabled for the Tenant")
    provider = smtp_server(mode="starttls", auth=("contact@example.org", "s3cret"),
                           auth_reply=reply)
    native = smtp_server()
    r = run_switchmail(["-i", "to@x.example"], MSG, config_for(tmp_path, provider, native))
    text = queued(r)
    assert "5.7.139" in text and "refused the login" in text
    assert "Authenticated SMTP" in text            # the fix, from the catalogue
    assert provider.messages == []
    (s,) = provider.wait_closed(1)
    assert "AUTH" in s.commands
    assert s.commands_after("AUTH") in ([], ["QUIT"]), s.commands
    assert "s3cret" not in text + r.log()


def test_wrong_password_never_reaches_mail(tmp_path, smtp_server, run_switchmail):
    provider = smtp_server(mode="starttls", auth=("contact@example.org", "s3cret"))
    native = smtp_server()
    r = run_switchmail(["-v", "-i", "to@x.example"], MSG,
                       config_for(tmp_path, provider, native, password="wrong-pass"))
    text = queued(r)
    (s,) = provider.wait_closed(1)
    assert "MAIL" not in s.commands and "DATA" not in s.commands
    assert "wrong-pass" not in text + r.log()
    assert "-> AUTH" in r.stderr          # the -v transcript names the command
    assert "wrong-pass" not in r.stderr
    assert "masked" in r.stderr or "AUTH PLAIN\n" in r.stderr or "AUTH LOGIN\n" in r.stderr


def test_no_auth_offered_with_credentials(tmp_path, smtp_server, run_switchmail):
    # a server that offers no AUTH: with credentials configured nothing is sent
    provider = smtp_server(mode="starttls")
    native = smtp_server()
    cfg = config_for(tmp_path, provider, native, username="u@example.org", password="pw",
                     **{"from": "u@example.org"})
    r = run_switchmail(["-i", "to@x.example"], MSG, cfg)
    text = queued(r)
    assert "AUTH" in text
    (s,) = provider.wait_closed(1)
    assert "MAIL" not in s.commands


def test_plaintext_auth_refused_by_config(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(auth=("u@example.org", "pw"), auth_require_tls=False)
    cfg = make_config(tmp_path, native=route_for(native))
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n", cfg)
    assert r.returncode == EX_CONFIG, r
    assert "unencrypted" in r.stderr and "allow_plaintext_auth" in r.stderr
    assert native.sessions == []
    cfg = make_config(tmp_path, native=route_for(native, allow_plaintext_auth=True))
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n", cfg)
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert m.auth_user == "u@example.org"


@pytest.mark.parametrize("text,words", [
    ('native = { host = "h"; from = "a@b.example"; encryption = "starttls"; };',
     ["native.encryption", "starttls", "none, ssl, tls", ":1:"]),
    ('native = { hots = "h"; from = "a@b.example"; };', ["native.hots", "host"]),
    ('native = { host = "h"; from = "a@b.example"; port = 70000; };', ["native.port", "70000"]),
    ('native = { host = "h";\n from = ; };', ["syntax error", ":2:"]),
    ('log = { syslog = false; };', ["native.host", "missing"]),
])
def test_bad_config_lines(tmp_path, run_switchmail, text, words):
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n" * 10000, text)
    assert r.returncode == EX_CONFIG, r
    assert r.stderr.count("\n") == 1
    for w in words:
        assert w in r.stderr


def test_missing_config_file(tmp_path, run_switchmail):
    r = run_switchmail(["-C", str(tmp_path / "nope.conf"), "to@x.example"], b"x\n",
                       use_config_flag=False)
    assert r.returncode == EX_CONFIG
    assert "nope.conf" in r.stderr and "No such file" in r.stderr


def test_config_from_environment(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    path = tmp_path / "env.conf"
    path.write_text(make_config(tmp_path, native=route_for(native)))
    path.chmod(0o600)
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\n\nb\n", use_config_flag=False,
                       env={"SWITCHMAIL_CONFIG": str(path)})
    assert r.returncode == 0, r
    native.wait_for(1)


def test_stdin_read_to_eof_even_on_failure(tmp_path):
    """A caller writing a large message never gets EPIPE, even when the
    command line is refused."""
    big = b"Subject: s\n\n" + b"x" * 75 + b"\n"
    proc = subprocess.Popen([str(switchmail_binary()), "-C", str(tmp_path / "none.conf"), "-Z"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    proc.stdin.write(big * 20000)          # 1.5 MB: more than any pipe buffer
    proc.stdin.close()
    assert proc.wait(timeout=30) == EX_USAGE


def test_hundred_megabyte_message_constant_memory(tmp_path, smtp_server):
    """100 MB through the native relay: delivered whole, and the peak RSS of
    switchmail stays small.  GNU time measures it: a child forked from this
    (large) Python process would count Python's memory before its exec."""
    native = smtp_server(store_data=False)
    cfg = tmp_path / "big.conf"
    cfg.write_text(make_config(tmp_path, native=route_for(native)))
    cfg.chmod(0o600)
    line = b"0123456789" * 7 + b"abcde\n"
    blocks = 100 * 1024 * 1024 // len(line) // 1024
    src = tmp_path / "big.eml"
    with open(src, "wb") as f:
        f.write(b"Subject: big\n\n")
        for _ in range(blocks):
            f.write(line * 1024)
    with open(src, "rb") as f:
        proc = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M cpu_s=%U+%S",
                               str(switchmail_binary()), "-C", str(cfg), "-i", "to@x.example"],
                              stdin=f, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr
    (m,) = native.wait_for(1, timeout=60)
    expected = len(b"Subject: big\r\n") + (len(line) + 1) * 1024 * blocks  # LF -> CRLF
    assert m.size > expected  # plus the Date:, Message-ID:, From: added
    stats = dict(kv.split("=") for kv in proc.stderr.split())
    print(f"100 MB message: switchmail peak RSS {stats['peak_rss_kb']} kB, CPU {stats['cpu_s']} s")
    if os.environ.get("SWITCHMAIL_SANITIZED"):
        return  # ASan's shadow memory says nothing about ours
    assert int(stats["peak_rss_kb"]) < 16 * 1024


def test_any_uid_empty_environment_any_directory(tmp_path, smtp_server):
    """Works as nobody, with no environment at all (no HOME, no PATH), from a
    directory it cannot read: nothing depends on $HOME or the cwd."""
    import pwd
    import shutil
    import tempfile
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    native = smtp_server()
    base = tempfile.mkdtemp(prefix="switchmail-nobody-")
    try:
        os.chmod(base, 0o755)
        spool = os.path.join(base, "spool")
        os.mkdir(spool)
        nobody = pwd.getpwnam("nobody")
        os.chown(spool, nobody.pw_uid, nobody.pw_gid)
        cfg = os.path.join(base, "sm.conf")
        with open(cfg, "w") as f:
            f.write(make_config(tmp_path, native=route_for(native),
                                settings={"queue": {"dir": spool}, "log": {"syslog": False}}))
        os.chmod(cfg, 0o644)   # no password in it: readable by all is fine
        locked = os.path.join(base, "locked")
        os.mkdir(locked, 0o700)
        proc = subprocess.run(["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
                               "--clear-groups", str(switchmail_binary()), "-C", cfg, "-i",
                               "to@x.example"],
                              input=b"Subject: as nobody\n\nhello\n", capture_output=True,
                              env={}, cwd=locked, timeout=30)
        assert proc.returncode == 0, proc.stderr
        (m,) = native.wait_for(1)
        assert m.rcpt_tos == ["to@x.example"]
        assert m.body_bytes() == b"hello\r\n"
        assert os.listdir(os.path.join(spool, "tmp")) == []
    finally:
        shutil.rmtree(base)


def test_dsn_options_reach_the_server(tmp_path, smtp_server, run_switchmail):
    native = smtp_server(dsn=True)
    r = run_switchmail(["-i", "-N", "success,failure", "-R", "hdrs", "-V", "env42",
                        "to@x.example"], b"Subject: dsn\n\nb\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    opts = " ".join(m.mail_options).upper()
    assert "RET=HDRS" in opts and "ENVID=ENV42" in opts
    assert any("NOTIFY=SUCCESS,FAILURE" in " ".join(o).upper() for o in m.rcpt_options)


def test_seven_bit_declared_when_asked(tmp_path, smtp_server, run_switchmail):
    native = smtp_server()
    r = run_switchmail(["-i", "-B", "7BIT", "to@x.example"], b"Subject: ascii\n\nplain\n",
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert "BODY=7BIT" in m.mail_options


def test_no_body_parameter_when_server_lacks_8bitmime(tmp_path, smtp_server, run_switchmail):
    """BODY=8BITMIME only when offered; the 8-bit message still goes out."""
    native = smtp_server(ehlo_drop=("8BITMIME",))
    r = run_switchmail(["-i", "to@x.example"], "Subject: s\n\nété\n".encode(),
                       make_config(tmp_path, native=route_for(native)))
    assert r.returncode == 0, r
    (m,) = native.wait_for(1)
    assert not any(o.startswith("BODY=") for o in m.mail_options)
    assert m.body_bytes() == "été\r\n".encode()
