"""End-to-end tests of the configuration side of switchmailctl (issue 5):
providers, connect, disconnect and status against real SMTP servers on
127.0.0.1, on a copy of the commented sample etc/switchmail.conf.

What is asserted: the admin's comments and layout survive connect /
disconnect / connect (only the changed setting lines differ) and the file
stays valid (switchmail -C sends through it, on the expected route); a
failed test leaves the file byte for byte as it was; --force saves anyway
and says so; the password given on stdin never shows in argv, the
environment, the output or the log; owner and mode are kept (0640, a
world-readable file made 0640 once it holds a password); status in text
and JSON (password never shown, queue counts equal to the files, last
result after a delivery and after a deferral, exit codes); the presets.
"""
import base64
import difflib
import json
import os
import signal
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SANITIZER_ENV, switchmail_binary

EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 64, 75, 78
PROVIDERS = REPO / "etc" / "providers.conf"
SAMPLE = REPO / "etc" / "switchmail.conf"
USER = "contact@example.org"
PASSWORD = 'Pw-7x"q#;9\\secret'   # quote, hash, semicolon, backslash
M365_535 = ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
            "is disabled for the Tenant.")
MSG = (b"From: Shop <shop@example.org>\nTo: customer@example.net\n"
       b"Subject: order\n\nThanks.\n")
SETTING_LINE = re.compile(
    r'^  (host|port|encryption|username|password|from|provider) = .+;$')


def ctl_binary() -> Path:
    path = switchmail_binary().parent / "switchmailctl"
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} not built (run make)")
    return path


def env():
    e = {"PATH": "/usr/bin:/bin", "SWITCHMAIL_PROVIDERS": str(PROVIDERS)}
    e.update({k: os.environ[k] for k in SANITIZER_ENV if k in os.environ})
    return e


class Run:
    def __init__(self, argv, proc):
        self.argv, self.returncode = argv, proc.returncode
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.stdout)

    def __str__(self):
        return (f"$ {' '.join(self.argv)}\n-> exit {self.returncode}\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


def ctl(conf, *args, input=b"", timeout=60):
    argv = [str(ctl_binary())] + (["-C", str(conf)] if conf else []) + \
        [str(a) for a in args]
    proc = subprocess.run(argv, input=input, capture_output=True, env=env(),
                          cwd="/", timeout=timeout)
    run = Run(argv, proc)
    print(run)
    return run


def send(conf, message=MSG):
    argv = [str(switchmail_binary()), "-C", str(conf), "-t", "-i"]
    return subprocess.run(argv, input=message, capture_output=True,
                          env=env(), cwd="/", timeout=60)


def connect_args(server, *extra):
    return ["connect", "--host", "localhost", "--port", server.port,
            "--encryption", "tls", "--username", USER, "--password-stdin",
            *extra]


def diff(before: str, after: str):
    """(removed, added) lines between two texts."""
    lines = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return ([l[2:] for l in lines if l.startswith("- ")],
            [l[2:] for l in lines if l.startswith("+ ")])


@pytest.fixture
def native(smtp_server):
    return smtp_server(name="native")


@pytest.fixture
def provider(smtp_server):
    return smtp_server(mode="starttls", auth=(USER, PASSWORD), name="provider")


@pytest.fixture
def sample(tmp_path, native, pki):
    """The commented sample, pointed at the test servers and tmp_path as an
    admin would edit it (native relay, queue, log, the test CA, a short
    timeout), mode 0640.  Returns its path."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    text = SAMPLE.read_text()
    edits = [
        ('  host = "localhost";', '  host = "127.0.0.1";'),
        ("  port = 25;", f"  port = {native.port};"),
        ('dir = "/var/spool/switchmail";', f'dir = "{spool}";'),
        ("syslog = true;", "syslog = false;"),
        ('file = "";', f'file = "{tmp_path / "switchmail.log"}";'),
        ("  active = false;", f'  tls_ca_file = "{pki.server.ca}";\n'
                              "  timeout = 5;\n  active = false;"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "switchmail.conf"
    path.write_text(text)
    path.chmod(0o640)
    return path


def log_of(conf):
    log = conf.parent / "switchmail.log"
    return log.read_text(errors="replace") if log.exists() else ""


def temp_files(conf):
    return [p.name for p in conf.parent.iterdir()
            if p.name.startswith("." + conf.name)]


# --------------------------------------------------------------------------
# connect / disconnect on the commented sample


def test_connect_disconnect_connect_keeps_comments(sample, provider, native):
    baseline = sample.read_text()
    mode = sample.stat().st_mode & 0o7777

    r = ctl(sample, *connect_args(provider), input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    assert "Saved in" in r.stdout and "connector is active" in r.stdout
    connected = sample.read_text()
    removed, added = diff(baseline, connected)
    assert [l.split("#")[0].strip() for l in removed] == ["active = false;"]
    now_on = [l for l in added if l.startswith("  active = true;")]
    assert len(now_on) == 1                    # the comment and its column
    assert now_on[0].index("#") == removed[0].index("#")
    assert now_on[0].split("#", 1)[1] == removed[0].split("#", 1)[1]
    others = [l for l in added if not l.startswith("  active = true;")]
    assert others and all(SETTING_LINE.match(l) for l in others), added
    assert '  password = "Pw-7x\\"q#;9\\\\secret";' in others
    for l in baseline.splitlines():          # every comment line is kept
        if l.lstrip().startswith("#"):
            assert l in connected.splitlines()
    assert sample.stat().st_mode & 0o7777 == mode == 0o640

    r = ctl(sample, "disconnect")
    assert r.returncode == 0, r
    assert "native relay 127.0.0.1" in r.stdout
    disconnected = sample.read_text()
    removed, added = diff(baseline, disconnected)
    assert removed == [] and added == others   # settings kept, switch off

    r = ctl(sample, "connect")                 # re-activates the saved ones
    assert r.returncode == 0, r
    assert sample.read_text() == connected
    assert temp_files(sample) == []

    p = send(sample)
    assert p.returncode == 0, p
    (m,) = provider.wait_for(1)
    assert m.auth_user == USER and m.mail_from == USER
    assert native.messages == []

    assert ctl(sample, "disconnect").returncode == 0
    p = send(sample)
    assert p.returncode == 0, p
    (m,) = native.wait_for(1)
    assert m.mail_from == "no-reply@platform.example"
    assert len(provider.messages) == 1


def test_failed_test_leaves_file_untouched(sample, smtp_server):
    refusing = smtp_server(mode="starttls", auth_reply=M365_535,
                           name="refusing")
    before = sample.read_bytes()
    st = sample.stat()
    r = ctl(sample, *connect_args(refusing), input=PASSWORD.encode() + b"\n")
    assert r.returncode not in (0, EX_USAGE), r
    assert "SmtpClientAuthentication is disabled" in r.stdout + r.stderr
    assert "nothing was saved" in r.stderr and "auth" in r.stderr.lower()
    assert sample.read_bytes() == before
    now = sample.stat()
    assert (now.st_ino, now.st_mtime_ns, now.st_mode) == \
        (st.st_ino, st.st_mtime_ns, st.st_mode)
    assert temp_files(sample) == []


def test_force_saves_anyway_and_shows_the_failure(sample, smtp_server):
    refusing = smtp_server(mode="starttls", auth_reply=M365_535,
                           name="refusing")
    r = ctl(sample, *connect_args(refusing, "--force"),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    assert "Saved anyway (--force)" in r.stdout
    assert "test failed at auth" in r.stdout.lower()
    assert "warning" in r.stderr and "5.7.139" in r.stdout + r.stderr
    assert "  active = true;" in sample.read_text()
    js = ctl(sample, "--json", "status")
    assert js.json()["active_route"] == "connector"


def test_json_connect_reports_the_test(sample, provider, smtp_server):
    r = ctl(sample, "--json", *connect_args(provider),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["saved"] is True and doc["test"]["ok"] is True
    assert doc["route"].startswith(f"localhost:{provider.port} (tls) as {USER}")

    refusing = smtp_server(mode="starttls", auth_reply=M365_535)
    before = sample.read_bytes()
    r = ctl(sample, "--json", *connect_args(refusing),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode != 0
    doc = r.json()
    assert doc["saved"] is False and doc["test"]["failed_step"] == "auth"
    assert doc["test"]["exit_code"] == r.returncode
    assert sample.read_bytes() == before


def test_password_never_in_argv_environment_output_or_log(sample, provider):
    argv = [str(ctl_binary()), "-v", "-C", str(sample),
            *[str(a) for a in connect_args(provider)]]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env(), cwd="/")
    time.sleep(0.3)                      # waiting for the password on stdin
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
    out, err = proc.communicate(PASSWORD.encode() + b"\n", timeout=60)
    assert proc.returncode == 0, (out, err)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    login = base64.b64encode(PASSWORD.encode())
    for where in (cmdline, environ, out, err, log_of(sample).encode()):
        assert PASSWORD.encode() not in where
        assert plain not in where and login not in where
    assert b"connect: connector active" in log_of(sample).encode()
    status = ctl(sample, "status")
    assert PASSWORD not in status.stdout + status.stderr
    assert re.search(r"password\s+\(set\)", status.stdout)


def test_world_readable_file_becomes_0640_with_a_password(sample, provider):
    sample.chmod(0o644)
    r = ctl(sample, *connect_args(provider), input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    assert sample.stat().st_mode & 0o7777 == 0o640
    sample.chmod(0o600)
    assert ctl(sample, "disconnect").returncode == 0
    assert sample.stat().st_mode & 0o7777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_owner_and_group_kept(sample, provider):
    os.chown(sample, 0, 12345)
    r = ctl(sample, *connect_args(provider), input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    st = sample.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 12345, 0o640)


def read_until(fd, seen, want, timeout=20.0):
    """Read the terminal fd into seen (a bytearray) until want shows."""
    end = time.monotonic() + timeout
    while want not in seen and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return want in seen


def test_terminal_asks_what_is_missing_without_echo(sample, provider):
    argv = [str(ctl_binary()), "-C", str(sample), "connect", "--port",
            str(provider.port)]
    pid, fd = pty.fork()
    if pid == 0:                         # the child: on a terminal
        os.chdir("/")
        os.execve(argv[0], argv, env())
    seen = bytearray()
    answers = [(b"SMTP server:", b"localhost\n"),
               (b"Username (empty: no AUTH):", USER.encode() + b"\n"),
               (f"Sender address [{USER}]:".encode(), b"\n"),
               (b"Password:", PASSWORD.encode() + b"\n")]
    for prompt, answer in answers:
        assert read_until(fd, seen, prompt), bytes(seen)
        os.write(fd, answer)
    read_until(fd, seen, b"Saved in")
    status = None
    deadline = time.monotonic() + 30        # never hang the suite
    while status is None and time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        else:
            time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        pytest.fail(f"switchmailctl connect did not finish: {bytes(seen)!r}")
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, bytes(seen)
    assert PASSWORD.encode() not in seen          # never echoed
    assert USER.encode() in seen                  # the others are
    text = sample.read_text()
    assert '  host = "localhost";' in text and f'  from = "{USER}";' in text
    assert "  active = true;" in text


def test_disconnect_when_off_leaves_the_file_alone(sample):
    before = sample.read_bytes()
    mtime = sample.stat().st_mtime_ns
    r = ctl(sample, "disconnect")
    assert r.returncode == 0 and "off already" in r.stdout, r
    assert sample.read_bytes() == before
    assert sample.stat().st_mtime_ns == mtime


def test_missing_password_without_terminal_is_refused(sample, provider):
    before = sample.read_bytes()
    r = ctl(sample, "connect", "--host", "localhost", "--port", provider.port,
            "--username", USER)
    assert r.returncode == EX_USAGE, r
    assert "--password-stdin" in r.stderr
    r = ctl(sample, "connect", "--password", "x")
    assert r.returncode == EX_USAGE and "never taken from the command line" \
        in r.stderr
    assert sample.read_bytes() == before


# --------------------------------------------------------------------------
# status


def queue_files(sample, sub):
    d = sample.parent / "spool" / sub
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def test_status_after_delivery_and_after_deferral(sample, provider):
    r = ctl(sample, "status")
    assert r.returncode == 0, r
    assert re.search(r"Active route\s+native", r.stdout)
    assert "last result  none yet" in r.stdout

    assert ctl(sample, *connect_args(provider),
               input=PASSWORD.encode() + b"\n").returncode == 0
    assert send(sample).returncode == 0
    provider.wait_for(1)
    r = ctl(sample, "status")
    assert r.returncode == 0, r
    assert re.search(r"Active route\s+connector: localhost:%d \(tls\)"
                     % provider.port, r.stdout)
    assert re.search(r"last result\s+delivered, \d{4}-\d\d-\d\d", r.stdout)
    assert re.search(r"password\s+\(set\)", r.stdout)
    assert PASSWORD not in r.stdout

    provider.stop()                      # the next attempt is deferred
    assert send(sample).returncode == 0  # queued
    failed = sample.parent / "spool" / "failed"
    failed.mkdir(exist_ok=True)
    (failed / "0123456789ABCDEF0123").write_bytes(b"")
    r = ctl(sample, "--json", "status")
    assert r.returncode == EX_TEMPFAIL, r
    doc = r.json()
    assert doc["valid"] is True and doc["active_route"] == "connector"
    assert doc["connector"]["password"] == "(set)"
    assert doc["native"]["password"] == "(not set)"
    assert doc["connector"]["last"]["result"] == "deferred"
    assert doc["connector"]["last"]["error"] != ""
    assert doc["native"]["last"] is None
    assert doc["queue"]["waiting"] == len(queue_files(sample, "new")) == 1
    assert doc["queue"]["failed"] == len(queue_files(sample, "failed")) == 1
    assert PASSWORD not in r.stdout
    text = ctl(sample, "status")
    assert text.returncode == EX_TEMPFAIL
    assert "1 waiting, 1 failed" in text.stdout
    assert re.search(r"last result\s+deferred", text.stdout)


def test_last_result_file_is_kept_for_a_repeated_outcome(sample, provider):
    """A burst of deliveries does not replace queue.dir/last-ROUTE for each
    message (a rename costs ext4 a write-back): the same outcome within a
    minute leaves the file as it is; another outcome replaces it at once."""
    assert ctl(sample, *connect_args(provider),
               input=PASSWORD.encode() + b"\n").returncode == 0
    last = sample.parent / "spool" / "last-connector"
    assert send(sample).returncode == 0
    first = last.stat()
    text = last.read_bytes()
    assert b"result delivered" in text
    for _ in range(3):
        assert send(sample).returncode == 0
    provider.wait_for(4)
    assert last.read_bytes() == text and last.stat().st_ino == first.st_ino
    provider.stop()
    assert send(sample).returncode == 0          # deferred: a new outcome
    assert b"result deferred" in last.read_bytes()
    assert last.stat().st_ino != first.st_ino


def test_status_of_an_invalid_configuration(sample):
    sample.write_text(sample.read_text().replace(
        "  active = false;", "  active = true;"))    # no host, no from
    r = ctl(sample, "status")
    assert r.returncode == EX_CONFIG, r
    assert "INVALID" in r.stdout and "connector.host is missing" in r.stderr
    js = ctl(sample, "--json", "status")
    assert js.returncode == EX_CONFIG
    assert js.json()["valid"] is False
    assert ctl(sample, "disconnect").returncode == 0   # repairs it
    assert ctl(sample, "status").returncode == 0


# --------------------------------------------------------------------------
# providers


def test_providers_lists_the_presets():
    r = ctl(None, "providers")
    assert r.returncode == 0, r
    for words in ("Microsoft 365", "smtp.office365.com:587 tls",
                  "OVH MX Plan", "ssl0.ovh.net:465 ssl", "ssl0.ovh.net:587 tls",
                  "Infomaniak", "mail.infomaniak.com:465 ssl", "Gmail",
                  "Google Workspace", "2-Step Verification",
                  "myaccount.google.com/apppasswords", "IONOS", "Gandi",
                  "apikey"):
        assert words in r.stdout, words
    doc = ctl(None, "--json", "providers").json()
    names = {p["name"]: p for p in doc}
    assert {"m365", "ovh", "ovh-tls", "infomaniak", "gmail"} <= set(names)
    assert names["m365"]["unsupported_ports"] == [465]
    assert "app password" in names["gmail"]["password_hint"]
    one = ctl(None, "providers", "ovh-pro")
    assert one.returncode == 0 and "proN.mail.ovh.net" in one.stdout


def test_unknown_provider_is_refused_clearly(sample):
    before = sample.read_bytes()
    r = ctl(None, "providers", "ovhh")
    assert r.returncode == EX_USAGE
    assert 'unknown provider "ovhh" (close: ovh' in r.stderr
    r = ctl(sample, "connect", "--provider", "gmial", "--password-stdin",
            input=b"x\n")
    assert r.returncode == EX_USAGE, r
    assert "close: gmail" in r.stderr and "switchmailctl providers" in r.stderr
    assert sample.read_bytes() == before
    text = sample.read_text().replace('  # provider = "ovh";',
                                      '  provider = "ovhh";')
    sample.write_text(text)
    r = ctl(sample, "status")
    assert r.returncode == EX_CONFIG
    assert 'connector.provider "ovhh" is not a known preset (close: ovh' \
        in r.stderr


def test_preset_needing_a_host_asks_for_it(sample):
    r = ctl(sample, "connect", "--provider", "ovh-pro", "--username", USER,
            "--password-stdin", input=b"x\n")
    assert r.returncode == EX_USAGE, r
    assert "proN.mail.ovh.net" in r.stderr


# --------------------------------------------------------------------------
# connect --tls-fingerprint / --tls-ca-file


def test_connect_pins_a_self_signed_server(sample, smtp_server, pki):
    """Proton Mail Bridge's case: a self-signed certificate fails the test,
    which names the fingerprint; connect --tls-fingerprint with it passes
    and writes the pin; an empty value takes it away again."""
    bridge = smtp_server(mode="starttls", auth=(USER, PASSWORD),
                         cert=pki.self_signed, name="bridge")
    before = sample.read_text()
    r = ctl(sample, *connect_args(bridge), input=PASSWORD.encode() + b"\n")
    assert r.returncode == EX_TEMPFAIL, r
    assert "self-signed" in r.stdout + r.stderr
    assert pki.self_signed.pin in r.stdout + r.stderr
    assert sample.read_text() == before                   # nothing saved

    r = ctl(sample, *connect_args(bridge, "--tls-fingerprint",
                                  "sha256:" + pki.self_signed.fingerprint_colons),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    text = sample.read_text()
    assert re.search(r'tls_fingerprint = "sha256:[0-9a-fA-F:]{64,95}";', text)
    assert "active = true;" in text

    r = ctl(sample, "connect", "--tls-fingerprint", "", "--force")
    assert r.returncode == 0, r              # saved, but the test failed again
    assert "self-signed" in r.stdout + r.stderr
    assert 'tls_fingerprint = "";' in sample.read_text()


def test_connect_tls_ca_file_is_checked_and_written(sample, provider, pki, tmp_path):
    r = ctl(sample, *connect_args(provider, "--tls-ca-file", "relative/ca.pem"),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode == EX_CONFIG, r
    assert "tls_ca_file" in r.stderr and "absolute" in r.stderr
    ca = tmp_path / "provider-ca.pem"
    ca.write_bytes(Path(pki.server.ca).read_bytes())
    r = ctl(sample, *connect_args(provider, "--tls-ca-file", ca),
            input=PASSWORD.encode() + b"\n")
    assert r.returncode == 0, r
    assert f'tls_ca_file = "{ca}";' in sample.read_text()
