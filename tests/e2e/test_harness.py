"""Tests of the test harness itself (smtpd.py, certs.py, conftest.py), with
Python's smtplib and raw sockets as the client: no switchmail binary needed.

They pin down what the switchmail tests rely on: what the server records,
how each fault looks from the client side, and how the PKI fails.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import socket
import ssl
import stat
import textwrap
import time

import pytest

from conftest import Raw, SwitchmailTimeout, make_config, render_value, route_for
from smtpd import MASK, fail_first

USER, PASSWORD = "contact@example.org", "s3cret pass"
O365_AUTH_FAIL = ("535 5.7.139 Authentication unsuccessful, "
                  "SmtpClientAuthentication is disabled for the Tenant")


def client_context(pki) -> ssl.SSLContext:
    """What a careful client does: verify the chain against the test CA and
    the name against the host it connects to."""
    return ssl.create_default_context(cafile=pki.ca)


def raw_dialogue(port, lines, timeout=5.0):
    """Send each line (bytes, sent as is) after reading one reply; return
    the replies.  For byte-exact things smtplib would normalise."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")

        def reply():
            text = b""
            while True:
                line = f.readline()
                text += line
                if len(line) < 4 or line[3:4] != b"-":
                    return text
        replies.append(reply())
        for line in lines:
            s.sendall(line)
            replies.append(reply())
    return replies


# --------------------------------------------------------------------------
# Delivery and what gets recorded


def test_plain_delivery_recorded_byte_exact(smtp_server):
    server = smtp_server()
    msg1 = b"From: a@example.org\r\nSubject: one\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    msg2 = b"Subject: two\r\n\r\nsecond\r\n"
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.sendmail("a@example.org", ["b@example.net", "c@example.net"], msg1)
        c.sendmail("a@example.org", ["d@example.net"], msg2)
    m1, m2 = server.wait_for(2)
    # smtplib dot-stuffs; the record is after aiosmtpd's unstuffing.
    assert m1.data == msg1 and m2.data == msg2
    assert m1.size == len(msg1)
    assert m1.sha256 == hashlib.sha256(msg1).hexdigest()
    assert m1.mail_from == "a@example.org"
    assert m1.rcpt_tos == ["b@example.net", "c@example.net"]
    assert m1.rcpt_options == [[], []]
    assert m1.tls is False and m1.auth_user is None and m1.sni is None
    assert m1.header("Subject") == "one"
    assert m1.raw_header("From") == "a@example.org"
    assert m1.body_bytes() == b".leading dot\r\n..two\r\nend\r\n"
    # Two messages, one connection.
    assert m1.session_id == m2.session_id == 1
    (session,) = server.wait_closed(1)
    assert session.messages == 2
    assert session.commands == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA",
                                "MAIL", "RCPT", "DATA", "QUIT"]
    assert server.errors == []


def test_raw_data_keeps_bare_lf_and_only_crlf_dot_crlf_ends(smtp_server):
    """aiosmtpd (Debian 1.4.3 with the CVE-2024-27305 fix) splits DATA on
    CRLF only: a bare LF stays in the data and "\\n.\\n" does not end it."""
    server = smtp_server()
    replies = raw_dialogue(server.port, [
        b"EHLO raw.example\r\n",
        b"MAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<b@example.net>\r\n",
        b"DATA\r\n",
        b"Subject: lf\r\n\r\nbare\nlf\n.\nstill data\r\n..x\r\n.\r\n",
        b"QUIT\r\n",
    ])
    assert replies[-2].startswith(b"250 ")
    (m,) = server.wait_for(1)
    assert m.data == b"Subject: lf\r\n\r\nbare\nlf\n.\nstill data\r\n.x\r\n"


def test_help_still_lists_commands(smtp_server):
    server = smtp_server()
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert b"DATA" in c.help() and b"MAIL" in c.help()


def test_commands_with_bare_lf_are_flagged(smtp_server):
    server = smtp_server()
    raw_dialogue(server.port, [b"EHLO raw.example\n", b"QUIT\r\n"])
    (session,) = server.wait_closed(1)
    assert session.bare_lf and session.ehlo == ["raw.example"]


def test_8bitmime_and_size_recorded(smtp_server):
    server = smtp_server()
    body = "Subject: caf\u00e9\r\n\r\nna\u00efve \u2014 \u00fcml\u00e4ut\r\n".encode()
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert c.has_extn("8bitmime") and c.has_extn("size")
        assert not c.has_extn("smtputf8") and not c.has_extn("dsn")
        c.sendmail("a@example.org", ["b@example.net"], body,
                   mail_options=["BODY=8BITMIME"])
    (m,) = server.wait_for(1)
    assert m.data == body
    assert "BODY=8BITMIME" in m.mail_options
    assert f"SIZE={len(body)}" in m.mail_options
    assert m.helo == "client.example"


def test_smtputf8_and_dsn_options(smtp_server):
    server = smtp_server(smtputf8=True, dsn=True)
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert c.has_extn("smtputf8") and c.has_extn("dsn")
        c.sendmail("j\u00f6rg@example.org", ["b@example.net"],
                   b"Subject: x\r\n\r\ny\r\n",
                   mail_options=["SMTPUTF8", "RET=HDRS", "ENVID=Abc123"],
                   rcpt_options=["NOTIFY=FAILURE,DELAY"])
    (m,) = server.wait_for(1)
    assert m.smtputf8 and m.mail_from == "j\u00f6rg@example.org"
    # aiosmtpd upper-cases parameters; the transcript keeps the raw line.
    assert "RET=HDRS" in m.mail_options and "ENVID=ABC123" in m.mail_options
    assert m.rcpt_options == [["NOTIFY=FAILURE,DELAY"]]
    (session,) = server.wait_closed(1)
    assert any("ENVID=Abc123" in line for who, line in session.transcript)


def test_dsn_parameters_refused_without_dsn(smtp_server):
    server = smtp_server()
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        code, text = c.mail("a@example.org", ["RET=FULL"])
    assert code == 555


def test_store_data_false_keeps_only_size_and_hash(smtp_server):
    server = smtp_server(store_data=False)
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 40000       # ~3 MB
    with smtplib.SMTP(server.host, server.port, timeout=10) as c:
        c.sendmail("a@example.org", ["b@example.net"], body)
    (m,) = server.wait_for(1)
    assert m.data is None
    assert m.size == len(body)
    assert m.sha256 == hashlib.sha256(body).hexdigest()


def test_size_limit_enforced(smtp_server):
    server = smtp_server(size_limit=1000)
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert c.esmtp_features["size"] == "1000"
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            c.sendmail("a@example.org", ["b@example.net"], b"x" * 2000)
    assert e.value.smtp_code == 552
    assert server.messages == []


# --------------------------------------------------------------------------
# TLS and AUTH


def test_starttls_auth_plain(smtp_server, pki):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    with smtplib.SMTP("localhost", server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert c.has_extn("starttls")
        assert not c.has_extn("auth"), "AUTH must wait for TLS"
        c.starttls(context=client_context(pki))  # verifies CA and name
        c.ehlo("client.example")
        assert c.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        c.login(USER, PASSWORD)                    # smtplib prefers PLAIN
        c.sendmail(USER, ["customer@example.net"], b"Subject: t\r\n\r\nb\r\n")
    (m,) = server.wait_for(1)
    assert m.tls and m.sni == "localhost" and m.auth_user == USER
    assert m.tls_version in ("TLSv1.2", "TLSv1.3")
    (session,) = server.wait_closed(1)
    assert session.tls_mode == "starttls"
    assert session.auth_attempts[0].mechanism == "PLAIN"
    assert session.auth_attempts[0].login == USER
    assert session.commands == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL",
                                "RCPT", "DATA", "QUIT"]
    assert ("C", f"AUTH PLAIN {MASK}") in session.transcript
    assert PASSWORD not in repr(session.transcript)
    assert server.sni_seen == ["localhost"]


def test_mail_without_auth_refused_when_auth_configured(smtp_server, pki):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    with smtplib.SMTP("localhost", server.port, timeout=5) as c:
        c.starttls(context=client_context(pki))
        c.ehlo("client.example")
        code, _ = c.mail(USER)
    assert code == 530


def test_require_starttls(smtp_server):
    server = smtp_server(mode="starttls", require_starttls=True)
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        code, text = c.mail("a@example.org")
    assert code == 530 and b"STARTTLS" in text


def test_implicit_tls_auth_login(smtp_server, pki):
    server = smtp_server(mode="implicit", auth=(USER, PASSWORD),
                         auth_mechanisms=("LOGIN",))
    with smtplib.SMTP_SSL("localhost", server.port, timeout=5,
                          context=client_context(pki)) as c:
        c.ehlo("client.example")
        assert not c.has_extn("starttls")
        assert c.esmtp_features["auth"].strip() == "LOGIN"
        c.login(USER, PASSWORD)
        c.sendmail(USER, ["customer@example.net"], b"Subject: t\r\n\r\nb\r\n")
    (m,) = server.wait_for(1)
    assert m.tls and m.sni == "localhost" and m.auth_user == USER
    (session,) = server.wait_closed(1)
    assert session.tls_mode == "implicit"
    assert [a.mechanism for a in session.auth_attempts] == ["LOGIN"]
    assert PASSWORD not in repr(session.transcript)
    assert session.transcript[0] == ("S", "220 localhost switchmail test ESMTP")


def test_no_sni_when_connecting_by_ip(smtp_server, pki):
    server = smtp_server(mode="implicit")
    with smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=5,
                          context=client_context(pki)) as c:   # IP SAN
        c.noop()
    (session,) = server.wait_closed(1)
    assert session.tls and session.sni is None
    assert server.sni_seen == [None]


def test_tls_version_limit(smtp_server, pki):
    server = smtp_server(mode="implicit", tls_max_version=ssl.TLSVersion.TLSv1_2)
    with smtplib.SMTP_SSL("localhost", server.port, timeout=5,
                          context=client_context(pki)) as c:
        c.noop()
    (session,) = server.wait_closed(1)
    assert session.tls_version == "TLSv1.2"


def test_auth_failure_reply_and_no_transaction(smtp_server, pki):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD),
                         auth_reply=O365_AUTH_FAIL)
    with smtplib.SMTP("localhost", server.port, timeout=5) as c:
        c.starttls(context=client_context(pki))
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login(USER, PASSWORD)
    assert e.value.smtp_code == 535
    assert e.value.smtp_error.decode() == O365_AUTH_FAIL[4:]
    (session,) = server.wait_closed(1)
    assert "AUTH" in session.commands
    assert not {"MAIL", "RCPT", "DATA"} & set(session.commands_after("AUTH"))
    assert session.auth_user is None
    assert [a.success for a in session.auth_attempts] == [False] * len(
        session.auth_attempts) and session.auth_attempts
    assert server.messages == [] and server.rejected == []


def test_wrong_password_gets_default_535(smtp_server, pki):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    with smtplib.SMTP("localhost", server.port, timeout=5) as c:
        c.starttls(context=client_context(pki))
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login(USER, "wrong")
    assert e.value.smtp_code == 535


def test_plaintext_auth_test_mode(smtp_server):
    """auth_require_tls=False: AUTH offered and taken without TLS, so a test
    can see whether the client would send credentials in clear."""
    server = smtp_server(auth=(USER, PASSWORD), auth_require_tls=False)
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        assert c.has_extn("auth")
        c.login(USER, PASSWORD)
    (session,) = server.wait_closed(1)
    assert session.auth_user == USER and not session.tls


def test_no_auth_offered_without_auth(smtp_server, pki):
    server = smtp_server(mode="starttls")
    with smtplib.SMTP("localhost", server.port, timeout=5) as c:
        c.starttls(context=client_context(pki))
        c.ehlo("client.example")
        assert not c.has_extn("auth")


# --------------------------------------------------------------------------
# Faults


def test_rcpt_refusal(smtp_server):
    server = smtp_server(rcpt_replies={"Bad@Example.net": "550 5.1.1 no such user"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        refused = c.sendmail("a@example.org", ["good@example.net",
                                               "bad@example.net"],
                             b"Subject: r\r\n\r\nb\r\n")
    assert refused == {"bad@example.net": (550, b"5.1.1 no such user")}
    (m,) = server.wait_for(1)
    assert m.rcpt_tos == ["good@example.net"]


def test_mail_reply(smtp_server):
    server = smtp_server(mail_reply="451 4.3.0 try again later")
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            c.sendmail("a@example.org", ["b@example.net"], b"x\r\n")
    assert e.value.smtp_code == 451


def test_data_reply_then_success(smtp_server):
    server = smtp_server(data_reply=fail_first(1, "552 5.3.4 too big"))
    msg = b"Subject: d\r\n\r\nb\r\n"
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("a@example.org", ["b@example.net"], msg)
        assert e.value.smtp_code == 552
        c.sendmail("a@example.org", ["b@example.net"], msg)
    m = server.wait_message(lambda rec: rec.seq == 2)
    (r,) = server.rejected
    assert r.reply == "552 5.3.4 too big" and r.data == msg
    assert m.reply.startswith("250 ") and m.seq == 2


def test_greeting_421(smtp_server):
    server = smtp_server(greeting="421 4.3.2 busy")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP(server.host, server.port, timeout=5)
    assert e.value.smtp_code == 421
    (session,) = server.wait_closed(1)
    assert session.commands == []


def test_greeting_554_answers_503_until_quit(smtp_server):
    server = smtp_server(greeting="554 5.3.2 no service for you")
    replies = raw_dialogue(server.port, [b"EHLO x\r\n", b"QUIT\r\n"])
    assert replies[0].startswith(b"554 ") and replies[1].startswith(b"503 ")
    assert replies[2].startswith(b"221 ")
    (session,) = server.wait_closed(1)
    assert session.commands == ["EHLO", "QUIT"]


def test_command_reply_override(smtp_server):
    server = smtp_server(mode="starttls",
                         command_replies={"STARTTLS": "454 4.7.0 TLS not available"})
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        with pytest.raises(smtplib.SMTPResponseException) as e:
            c.starttls()
    assert e.value.smtp_code == 454


def test_drop_at_data_end(smtp_server):
    server = smtp_server(drop_at="DATA_END")
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.sendmail("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\ny\r\n")
    (r,) = server.rejected
    assert r.reply is None and r.data == b"Subject: x\r\n\r\ny\r\n"
    assert server.messages == []


def test_stall_at_mail(smtp_server):
    server = smtp_server(stall_at="MAIL")
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.ehlo("client.example")
        c.sock.settimeout(0.3)
        with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
            c.mail("a@example.org")
        c.close()
    (session,) = server.wait_closed(1)
    assert session.commands[-1] == "MAIL"


def test_stop_ends_open_connections(smtp_server):
    server = smtp_server()
    c = smtplib.SMTP(server.host, server.port, timeout=5)
    c.ehlo("client.example")
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 5
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        c.noop()
    c.close()


# --------------------------------------------------------------------------
# Raw servers


def test_silent_server(raw_server):
    server = raw_server("silent")
    # smtplib turns the read timeout into SMTPServerDisconnected.
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP(server.host, server.port, timeout=0.3)
    assert server.wait_connections(1) == 1


def test_close_server(raw_server):
    server = raw_server("close")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP(server.host, server.port, timeout=5)


def test_plain_greeting_server_has_no_starttls(raw_server):
    server = raw_server("plain")
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        code, banner = c.ehlo("client.example")
        assert c.does_esmtp and not c.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            c.starttls()
    assert server.commands == ["EHLO", "QUIT"]
    assert server.messages == []


# --------------------------------------------------------------------------
# PKI


BAD_CERTS = {
    "expired": "certificate has expired",
    "not_yet_valid": "certificate is not yet valid",
    "wrong_name": "Hostname mismatch",
    "unknown_ca_leaf": "unable to get local issuer certificate",
    "self_signed": "self-signed certificate",
}


@pytest.mark.parametrize("name", sorted(BAD_CERTS))
def test_bad_certificates_fail_verification(smtp_server, pki, name):
    server = smtp_server(mode="implicit", cert=getattr(pki, name))
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        smtplib.SMTP_SSL("localhost", server.port, timeout=5,
                         context=client_context(pki))
    assert BAD_CERTS[name] in str(e.value)
    (session,) = server.wait_closed(1)
    assert not session.tls and session.commands == []
    assert any("TLS handshake failed" in err for err in session.errors)
    assert server.sni_seen == ["localhost"]


def test_pki_files_and_fingerprints(smtp_server, pki):
    assert pki.server.ca == pki.ca and pki.unknown_ca_leaf.ca == pki.unknown_ca
    for leaf in pki.leaves().values():
        assert stat.S_IMODE(os.stat(leaf.key).st_mode) == 0o600
        assert len(leaf.fingerprint) == 64
        assert leaf.pin == "sha256:" + leaf.fingerprint
    assert pki.wrong_name.dns_names == ("wrong.example", "other.example")
    # The fingerprint is the one of the certificate the server presents.
    server = smtp_server(mode="implicit")
    ctx = client_context(pki)
    with socket.create_connection(server.address, timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    assert hashlib.sha256(der).hexdigest() == pki.server.fingerprint
    # Each leaf verifies against the CA its .ca names (the unknown-CA one
    # against the second CA, the self-signed one against itself).
    for leaf in (pki.unknown_ca_leaf, pki.self_signed):
        server = smtp_server(mode="implicit", cert=leaf)
        with smtplib.SMTP_SSL("localhost", server.port, timeout=5,
                              context=ssl.create_default_context(cafile=leaf.ca)) as c:
            c.noop()


# --------------------------------------------------------------------------
# Config writer and runner


def test_make_config_renders_libconfig(tmp_path, smtp_server, pki):
    server = smtp_server(mode="starttls", auth=(USER, 'pa"ss\\word'))
    text = make_config(
        tmp_path, connector=route_for(server, allowed_senders=["*@example.org"]),
        native={"host": "127.0.0.1", "port": 2525, "encryption": "none",
                "from": "no-reply@platform.example"},
        extra="aliases = { root = \"ops@example.org\"; };")
    assert (tmp_path / "spool").is_dir()
    assert text == textwrap.dedent(f"""\
        connector = {{
          active = true;
          host = "127.0.0.1";
          port = {server.port};
          encryption = "tls";
          username = "{USER}";
          password = "pa\\"ss\\\\word";
          from = "{USER}";
          tls_ca_file = "{pki.ca}";
          timeout = 5;
          allowed_senders = [ "*@example.org" ];
        }};
        native = {{
          host = "127.0.0.1";
          port = 2525;
          encryption = "none";
          from = "no-reply@platform.example";
        }};
        default_domain = "example.org";
        queue = {{
          dir = "{tmp_path}/spool";
        }};
        log = {{
          syslog = false;
          file = "{tmp_path}/switchmail.log";
        }};
        aliases = {{ root = "ops@example.org"; }};
        """)
    off = make_config(tmp_path, connector={"host": "h", "active": True},
                      active=False, settings={"default_domain": None,
                                              "hostname": "box.example"})
    assert off.startswith('connector = {\n  active = false;\n  host = "h";')
    assert "default_domain" not in off and 'hostname = "box.example";' in off
    assert render_value(Raw("starttls")) == "starttls"
    assert render_value(3_000_000_000) == "3000000000L"
    assert render_value(("a", 1)) == '( "a", 1 )'
    assert render_value("tab\there\x01") == '"tab\\there\\x01"'


FAKE_BINARY = """#!/bin/sh
echo "argv: $*"
echo "cwd: $(pwd)"
env | sort
echo "--stdin--"
cat
echo "to stderr" >&2
exit 75
"""


def test_runner_argv_env_input(run_switchmail, tmp_path, monkeypatch):
    fake = tmp_path / "fake-switchmail"
    fake.write_text(FAKE_BINARY)
    fake.chmod(0o755)
    monkeypatch.setenv("SWITCHMAIL_BIN", str(fake))
    monkeypatch.setenv("LEAKY", "should not pass")
    r = run_switchmail(["-t", "-i"], input=b"Subject: s\r\n\r\nbody\r\n",
                       config={"native": {"host": "127.0.0.1", "port": 25}},
                       env={"EXTRA": "1"})
    assert r.returncode == 75
    assert r.args == [str(fake), "-C", str(tmp_path / "switchmail.conf"),
                      "-t", "-i"]
    assert f"argv: -C {tmp_path}/switchmail.conf -t -i" in r.stdout
    assert "cwd: /\n" in r.stdout
    assert "PATH=/usr/bin:/bin\n" in r.stdout and "EXTRA=1\n" in r.stdout
    assert "LEAKY" not in r.stdout
    assert r.stdout.endswith("--stdin--\nSubject: s\r\n\r\nbody\r\n")
    assert r.stderr == "to stderr\n"
    assert stat.S_IMODE(os.stat(r.config_path).st_mode) == 0o600
    assert 'host = "127.0.0.1";' in r.config_path.read_text()
    # Raw text, then "the config written last".
    r2 = run_switchmail(["-bp"], config="native = { host = \"x\"; };\n")
    assert r2.config_path.read_text() == "native = { host = \"x\"; };\n"
    r3 = run_switchmail(["-bp"], argv0="mailq")
    assert r3.config_path == r2.config_path and r3.returncode == 75


def test_runner_timeout(run_switchmail, tmp_path, monkeypatch):
    fake = tmp_path / "hang"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SWITCHMAIL_BIN", str(fake))
    start = time.monotonic()
    with pytest.raises(SwitchmailTimeout):
        run_switchmail([], config="", timeout=0.5)
    assert time.monotonic() - start < 5


def test_route_for_modes(smtp_server, pki):
    plain = smtp_server()
    implicit = smtp_server(mode="implicit", auth=(USER, PASSWORD))
    assert route_for(plain) == {"host": "127.0.0.1", "port": plain.port,
                                "encryption": "none",
                                "from": "no-reply@platform.example",
                                "timeout": 5}
    r = route_for(implicit, timeout=None, tls_verify=False)
    assert r["encryption"] == "ssl" and r["tls_ca_file"] == pki.ca
    assert r["username"] == USER and r["password"] == PASSWORD
    assert "timeout" not in r and r["tls_verify"] is False
