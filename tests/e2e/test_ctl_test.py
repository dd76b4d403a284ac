"""End-to-end tests of `switchmailctl test` (issue 5): every step's failure
is named in the text output and in --json, with one line of cause, one line
of fix (the hint's key words asserted), the exit code, and a password that
never shows.  Servers run on 127.0.0.1; DNS failures in a private mount
namespace so that no query leaves the machine.
"""
import base64
import json
import os
import subprocess
import time

import pytest

from conftest import SANITIZER_ENV, make_config, route_for, switchmail_binary

EX_USAGE, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 64, 69, 75, 78
USER = ("contact@example.org", "Pw-7f3#secret")
NATIVE_UNUSED = {"host": "127.0.0.1", "port": 9, "encryption": "none",
                 "from": "no-reply@platform.example"}
LABELS = {"settings": "settings", "dns": "DNS", "connect": "connect",
          "tls": "TLS", "ehlo": "EHLO", "auth": "AUTH", "sender": "sender",
          "send": "send"}
M365_535 = ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
            "is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled "
            "for more information.")
GOOGLE_534 = ("534-5.7.9 Application-specific password required. Learn more at\r\n"
              "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
              "a1-20020a05")


def ctl_binary():
    path = switchmail_binary().parent / "switchmailctl"
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} not built (run make)")
    return path


class Run:
    """One switchmailctl run: exit code, stdout, stderr (text)."""

    def __init__(self, argv, proc, duration):
        self.argv, self.returncode, self.duration = argv, proc.returncode, duration
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def __str__(self):
        return (f"$ {' '.join(self.argv)}\n-> exit {self.returncode}\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


def write_config(tmp_path, text):
    path = tmp_path / "switchmail.conf"
    path.write_text(text)
    path.chmod(0o600)              # it holds a password
    return path


def ctl(cfg, *args, flags=(), resolv=None, timeout=60):
    """switchmailctl -C cfg [flags] test args; with resolv, inside a mount
    namespace whose /etc/resolv.conf is that file."""
    argv = [str(ctl_binary()), "-C", str(cfg), *flags, "test", *args]
    env = {"PATH": "/usr/bin:/bin"}
    env.update({k: os.environ[k] for k in SANITIZER_ENV if k in os.environ})
    cmd = argv
    if resolv is not None:
        script = (f"mount --bind {resolv} /etc/resolv.conf && exec "
                  + " ".join(f"'{a}'" for a in argv))
        cmd = ["unshare", "-m", "sh", "-c", script]
        env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, env=env, cwd="/",
                          timeout=timeout)
    return Run(argv, proc, time.monotonic() - start)


def both(cfg, *args, **kw):
    """The text run and the --json run (with its parsed document)."""
    text = ctl(cfg, *args, **kw)
    js = ctl(cfg, *args, flags=("--json",), **kw)
    assert js.stdout.count("\n") == 1, str(js)
    return text, js, json.loads(js.stdout)


def assert_failed(cfg, step, code, cause_words=(), fix_words=(), *args, **kw):
    """The test fails at `step` with exit `code`, in text and in JSON, with
    one cause line and one fix line holding the given words."""
    text, js, doc = both(cfg, *args, **kw)
    for r in (text, js):
        assert r.returncode == code, r
        assert r.stderr.startswith(f"switchmailctl: test failed at {step}: "), r
        assert r.stderr.count("\n") == 1, r
    assert doc["ok"] is False and doc["failed_step"] == step, doc
    assert [s["step"] for s in doc["steps"]][-1] == step, doc
    assert doc["steps"][-1]["ok"] is False
    assert all(s["ok"] for s in doc["steps"][:-1]), doc
    lines = text.stdout.splitlines()
    failed = [ln for ln in lines if ln.startswith("✗ ")]
    assert failed and failed[0].split()[1] == LABELS[step], text
    causes = [ln for ln in lines if ln.startswith("  cause: ")]
    fixes = [ln for ln in lines if ln.startswith("  fix:   ")]
    assert len(causes) == 1 and len(fixes) == 1, text
    assert lines[-2:] == causes + fixes, text       # the test stops there
    assert causes[0][9:] == doc["cause"] and fixes[0][9:] == doc["fix"]
    for w in cause_words:
        assert w in doc["cause"], (w, doc)
    for w in fix_words:
        assert w in doc["fix"], (w, doc)
    return text, doc


def conn_cfg(tmp_path, server=None, **over):
    """The connector (active) at server by the name "localhost"."""
    route = route_for(server, host="localhost", **over) if server else over
    return write_config(tmp_path, make_config(tmp_path, connector=route,
                                              native=NATIVE_UNUSED))


# --------------------------------------------------------------------------
# Everything works


def test_full_pass_with_send_to(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER, ehlo_extra=("PIPELINING",))
    cfg = conn_cfg(tmp_path, srv)
    r = ctl(cfg, "--send-to", "rcpt@example.net")
    assert r.returncode == 0 and r.stderr == "", r
    lines = r.stdout.splitlines()
    assert [ln.split()[1] for ln in lines[:8]] == list(LABELS.values()), r
    assert all(ln.startswith("✓ ") for ln in lines[:8]), r
    assert "localhost → 127.0.0.1" in lines[1]
    assert "STARTTLS TLSv1." in lines[3] and "certificate verified" in lines[3]
    for offered in ("SIZE", "8BITMIME", "AUTH LOGIN PLAIN", "PIPELINING"):
        assert offered in lines[4], lines[4]
    assert "PLAIN accepted" in lines[5]
    assert lines[7].rstrip().endswith(" ms") and "250" in lines[7]
    assert "\033[" not in r.stdout                  # no colours off a terminal
    (m,) = srv.wait_for(1)
    assert m.rcpt_tos == ["rcpt@example.net"] and m.mail_from == USER[0]
    assert m.auth_user == USER[0] and m.tls
    assert m.header("Subject") == "switchmail test message"
    assert m.header("From") == USER[0] and m.header("To") == "rcpt@example.net"
    assert m.header("Date") and m.header("Message-ID")
    # the probe's own session: no message, RSET after MAIL, then QUIT
    probe = srv.wait_closed(2)[0]
    assert probe.commands == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL",
                              "RSET", "QUIT"], probe.commands


def test_json_document(tmp_path, smtp_server):
    srv = smtp_server(mode="implicit", auth=USER)
    cfg = conn_cfg(tmp_path, srv)
    r = ctl(cfg, "--send-to", "rcpt@example.net", flags=("--json",))
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["route"] == "connector" and doc["ok"] is True
    assert [s["step"] for s in doc["steps"]] == list(LABELS)
    assert all(s["ok"] and isinstance(s["ms"], int) and s["detail"]
               for s in doc["steps"]), doc
    assert doc["failed_step"] is None and doc["cause"] is None
    assert doc["fix"] is None and doc["warnings"] == []
    assert doc["reply"].startswith("250"), doc
    assert "implicit TLSv1." in doc["steps"][3]["detail"]
    assert len(srv.wait_for(1)) == 1


def test_plain_route_without_login_skips_tls_and_auth(tmp_path, smtp_server):
    """The native relay (default route when the connector is inactive):
    no TLS, no login; both steps are skipped, not failed."""
    srv = smtp_server()
    cfg = write_config(tmp_path, make_config(
        tmp_path, connector=dict(route_for(srv), active=False),
        native=route_for(srv)))
    text, js, doc = both(cfg)
    assert text.returncode == 0 and js.returncode == 0, text
    assert doc["route"] == "native"
    skipped = [s["step"] for s in doc["steps"] if s.get("skipped")]
    assert skipped == ["tls", "auth"], doc
    assert "– TLS" in text.stdout and "– AUTH" in text.stdout


# --------------------------------------------------------------------------
# One test per step's failure


def test_unknown_host(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -m")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    cfg = conn_cfg(tmp_path, host="no-such-host.invalid", port=587,
                   encryption="tls", username=USER[0], password=USER[1],
                   **{"from": USER[0]}, timeout=3)
    text, doc = assert_failed(cfg, "dns", EX_TEMPFAIL, ["no-such-host.invalid"],
                              ["spelling", "resolv.conf"], resolv=resolv)
    assert "✓ settings" in text.stdout


def test_refused_port(tmp_path, closed_port):
    cfg = conn_cfg(tmp_path, host="127.0.0.1", port=closed_port,
                   encryption="none", **{"from": USER[0]})
    text, doc = assert_failed(cfg, "connect", EX_TEMPFAIL, ["refused"],
                              ["465 for ssl, 587 for tls"])
    assert "✓ DNS" in text.stdout


def test_silent_port_times_out(tmp_path, raw_server):
    silent = raw_server("silent")
    cfg = conn_cfg(tmp_path, host="127.0.0.1", port=silent.port,
                   encryption="none", **{"from": USER[0]}, timeout=2)
    text, doc = assert_failed(cfg, "connect", EX_TEMPFAIL,
                              ["no SMTP greeting within 2 s"], ["firewall"])
    r = ctl(cfg)
    assert r.duration < 2 + 1.5, r.duration


def test_ssl_on_plaintext_port(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER)
    cfg = conn_cfg(tmp_path, srv, encryption="ssl")
    assert_failed(cfg, "tls", EX_TEMPFAIL, ["speaks plaintext SMTP first"],
                  ['set encryption = "tls" (STARTTLS)'])
    assert srv.messages == []


def test_tls_on_implicit_port(tmp_path, smtp_server):
    srv = smtp_server(mode="implicit", auth=USER)
    cfg = conn_cfg(tmp_path, srv, encryption="tls", timeout=2)
    text, doc = assert_failed(cfg, "tls", EX_TEMPFAIL, ["implicit TLS"],
                              ['set encryption = "ssl"'])
    assert "✓ connect" in text.stdout               # TCP worked; TLS did not
    assert [s["step"] for s in doc["steps"]] == ["settings", "dns", "connect", "tls"]


def test_starttls_not_offered(tmp_path, raw_server):
    plain = raw_server("plain", offer_auth=True)
    cfg = conn_cfg(tmp_path, host="localhost", port=plain.port, encryption="tls",
                   username=USER[0], password=USER[1], **{"from": USER[0]},
                   timeout=5)
    assert_failed(cfg, "tls", EX_TEMPFAIL, ["does not offer STARTTLS"],
                  ['encryption = "ssl"', "STARTTLS"])
    plain.wait_connections(2)
    time.sleep(0.2)
    verbs = {c.split()[0].upper() for c in plain.commands if c.strip()}
    assert verbs <= {"EHLO", "QUIT"}, plain.commands   # never AUTH in clear


@pytest.mark.parametrize("leaf,cause,fix", [
    ("wrong_name", "issued for wrong.example, other.example, not for localhost",
     "set host to one of those names"),
    ("expired", "expired on", "renew"),
    ("unknown_ca_leaf", "unknown certificate authority", "tls_fingerprint"),
])
def test_bad_certificate(tmp_path, smtp_server, pki, leaf, cause, fix):
    srv = smtp_server(mode="implicit", auth=USER, cert=getattr(pki, leaf))
    cfg = conn_cfg(tmp_path, srv, tls_ca_file=pki.ca)
    assert_failed(cfg, "tls", EX_TEMPFAIL, [cause], [fix])
    time.sleep(0.2)
    assert all(s.commands == [] for s in srv.sessions), srv.dump()


def test_auth_refused_microsoft(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER, auth_reply=M365_535)
    cfg = conn_cfg(tmp_path, srv)
    text, doc = assert_failed(cfg, "auth", EX_TEMPFAIL,
                              ["refused the login", "535 5.7.139"],
                              ["Authenticated SMTP"])
    assert doc["reply"].startswith("535 5.7.139 Authentication unsuccessful")
    assert "offered: LOGIN PLAIN" in doc["steps"][-1]["detail"]
    for s in srv.wait_closed(2):
        assert "MAIL" not in s.commands, s.commands


def test_auth_refused_google_app_password(tmp_path, smtp_server):
    """Google's reply to an account password, from a host that is not
    Google's by name: the generic 5.7.9 hint still says app password."""
    srv = smtp_server(mode="implicit", auth=USER, auth_reply=GOOGLE_534)
    cfg = conn_cfg(tmp_path, srv)
    text, doc = assert_failed(cfg, "auth", EX_TEMPFAIL, ["534-5.7.9"],
                              ["app password"])
    assert "InvalidSecondFactor" in doc["reply"]


def test_auth_not_offered(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls")
    cfg = conn_cfg(tmp_path, srv, username=USER[0], password=USER[1],
                   **{"from": USER[0]})
    assert_failed(cfg, "auth", EX_TEMPFAIL, ["offers no authentication"],
                  ["port", "username"])


@pytest.mark.parametrize("reply", [
    "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
    "554 5.2.252 SendAsDenied; contact@example.org not allowed to send as "
    "other@example.org; STOREDRV.Submission.Exception:SendAsDeniedException."
    "MapiExceptionSendAsDenied",
])
def test_sender_refused(tmp_path, smtp_server, reply):
    srv = smtp_server(mode="starttls", auth=USER, mail_reply=reply)
    cfg = conn_cfg(tmp_path, srv)
    text, doc = assert_failed(cfg, "sender", EX_UNAVAILABLE,
                              [f"<{USER[0]}>", reply], ["Send As"])
    assert doc["reply"] == reply
    assert "MAIL FROM:<contact@example.org>" in doc["steps"][-1]["detail"]


def test_sender_temporarily_refused(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER,
                      mail_reply="451 4.3.0 try again later")
    cfg = conn_cfg(tmp_path, srv)
    assert_failed(cfg, "sender", EX_TEMPFAIL, ["451 4.3.0"], ["later"])


def test_message_refused_with_send_to(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER,
                      rcpt_replies={"nobody@example.net": "550 5.1.1 no such user"})
    cfg = conn_cfg(tmp_path, srv)
    assert_failed(cfg, "send", EX_UNAVAILABLE, ["550 5.1.1"], ["spelling"],
                  "--send-to", "nobody@example.net")
    assert srv.messages == []


def test_sender_differs_from_username_is_a_warning(tmp_path, smtp_server):
    srv = smtp_server(mode="starttls", auth=USER)
    cfg = conn_cfg(tmp_path, srv, **{"from": "shop@example.org"})
    text, js, doc = both(cfg)
    assert text.returncode == 0 and js.returncode == 0, text
    assert text.stdout.startswith("⚠ settings"), text
    warn = [ln for ln in text.stdout.splitlines() if ln.startswith("  ⚠ ")]
    assert len(warn) == 1 and "differs from connector.username" in warn[0], text
    assert doc["ok"] is True and len(doc["warnings"]) == 1
    assert "shop@example.org" in doc["warnings"][0]
    assert not doc["warnings"][0].startswith(str(cfg))   # no file:line prefix


# --------------------------------------------------------------------------
# Settings, routes, arguments, exit codes


def test_settings_failure_route_without_from(tmp_path):
    cfg = write_config(tmp_path, make_config(
        tmp_path, connector={"active": False, "host": "127.0.0.1", "port": 25,
                             "encryption": "none"},
        native=NATIVE_UNUSED))
    assert_failed(cfg, "settings", EX_CONFIG, ["connector.from is not set"],
                  ["connector.from"], "--route", "connector")


def test_route_connector_without_connector(tmp_path):
    cfg = write_config(tmp_path, make_config(tmp_path, native=NATIVE_UNUSED))
    r = ctl(cfg, "--route", "connector")
    assert r.returncode == EX_CONFIG and r.stdout == "", r
    assert "no connector is configured" in r.stderr and "connect" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("args,words", [
    (["--route", "backup"], "connector or native"),
    (["--send-to", "a@b\r\nRCPT TO:<x@y>"], "--send-to"),
    (["--send-to", "root"], "full address"),
    (["--send-to"], "missing"),
    (["--bogus"], "unknown argument"),
])
def test_bad_arguments(tmp_path, args, words):
    cfg = write_config(tmp_path, make_config(tmp_path, native=NATIVE_UNUSED))
    r = ctl(cfg, *args)
    assert r.returncode == EX_USAGE and r.stdout == "", r
    assert words in r.stderr and "\r" not in r.stderr, r


# --------------------------------------------------------------------------
# The password never shows


def test_password_never_shown(tmp_path, smtp_server):
    secret = USER[1]
    forms = [secret, base64.b64encode(secret.encode()).decode(),
             base64.b64encode(f"\0{USER[0]}\0{secret}".encode()).decode()]
    ok_srv = smtp_server(mode="implicit", auth=USER)
    bad_srv = smtp_server(mode="starttls", auth=USER, auth_reply=M365_535)
    login_srv = smtp_server(mode="implicit", auth=USER,
                            auth_mechanisms=("LOGIN",))
    runs = []
    for srv, extra in ((ok_srv, ["--send-to", "rcpt@example.net"]),
                       (bad_srv, []), (login_srv, [])):
        cfg = conn_cfg(tmp_path, srv)
        for flags in ((), ("--json",), ("-v",), ("-v", "--json")):
            runs.append(ctl(cfg, *extra, flags=flags))
    assert runs[0].returncode == 0 and runs[4].returncode == EX_TEMPFAIL
    assert runs[8].returncode == 0, runs[8]         # AUTH LOGIN works too
    assert "-> AUTH PLAIN" in runs[2].stderr        # the transcript is there
    assert "(AUTH response masked)" in runs[10].stderr
    for r in runs:
        for form in forms:
            assert form not in r.stdout and form not in r.stderr, (form, str(r))
