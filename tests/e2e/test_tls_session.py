"""TLS session resumption (issue 8): the session a verified handshake gets
is kept in queue.dir/tls-session-ROUTE and offered by the next send, which
then skips the certificate and the CA file.  What must hold: a session is
only kept after every check passed; it is only offered for the same host
name and trust settings (CA file, pin, verification); a bad, stale or
foreign file never stops mail; `tls_session_cache = false` keeps nothing;
`switchmailctl test` always makes a full handshake.  Servers run on
127.0.0.1 with the suite's throwaway CA; the server records whether it
resumed (SessionRecord.tls_resumed).
"""
import os
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import make_config, queued, route_for, switchmail_binary

MSG = b"From: contact@example.org\nSubject: resume\n\nresumed?\n"
USER = ("contact@example.org", "s3cret")
NATIVE_UNUSED = {"host": "127.0.0.1", "port": 9, "encryption": "none",
                 "from": "no-reply@platform.example"}


def conn_cfg(tmp_path, server, **over):
    return make_config(tmp_path, connector=route_for(server, host="localhost", **over),
                       native=NATIVE_UNUSED)


def cache_file(tmp_path) -> Path:
    return Path(tmp_path) / "spool" / "tls-session-connector"


def send(run_switchmail, cfg=None, args=("-i",)):
    r = run_switchmail([*args, "to@x.example"], MSG, cfg)
    assert r.returncode == 0, r
    return r


def resumed(srv, n):
    """tls_resumed of the server's first n sessions, in order."""
    return [s.tls_resumed for s in srv.wait_closed(n)]


@pytest.mark.parametrize("mode,version", [
    ("implicit", ssl.TLSVersion.TLSv1_3), ("starttls", ssl.TLSVersion.TLSv1_3),
    ("implicit", ssl.TLSVersion.TLSv1_2), ("starttls", ssl.TLSVersion.TLSv1_2)])
def test_second_send_resumes(tmp_path, smtp_server, run_switchmail, mode, version):
    srv = smtp_server(mode=mode, auth=USER, tls_min_version=version,
                      tls_max_version=version)
    first = send(run_switchmail, conn_cfg(tmp_path, srv), ("-v", "-i"))
    assert cache_file(tmp_path).is_file()
    second = send(run_switchmail, None, ("-v", "-i"))
    third = send(run_switchmail)
    assert resumed(srv, 3) == [False, True, True]
    msgs = srv.wait_for(3)
    assert all(m.tls and m.auth_user == USER[0] for m in msgs)
    assert {m.tls_version for m in msgs} == {version.name.replace("v1_", "v1.")}
    assert "certificate subject" in first.stderr and "session resumed" not in first.stderr
    assert "session resumed" in second.stderr
    assert third.stderr == ""


def test_cache_file_is_the_groups_and_holds_no_certificate_or_password(
        tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    path = cache_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    data = path.read_bytes()
    assert data.startswith(b"switchmail-tls-session 2\nkey ")
    der = x509.load_pem_x509_certificate(Path(pki.server.cert).read_bytes()) \
        .public_bytes(serialization.Encoding.DER)
    assert der not in data              # the peer certificate is not kept
    assert USER[1].encode() not in data
    assert not [p for p in path.parent.iterdir() if p.name.startswith("tls-session-connector.")]


def test_off_keeps_nothing(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER)
    cfg = conn_cfg(tmp_path, srv, tls_session_cache=False)
    send(run_switchmail, cfg)
    send(run_switchmail)
    assert resumed(srv, 2) == [False, False]
    assert not cache_file(tmp_path).exists()


def test_plaintext_route_keeps_nothing(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="plain")
    send(run_switchmail, conn_cfg(tmp_path, srv))
    srv.wait_for(1)
    assert not cache_file(tmp_path).exists()


def test_failed_check_keeps_nothing(tmp_path, smtp_server, pki, run_switchmail):
    """TLS 1.2 hands the session over inside the handshake, before our
    checks: a certificate for other names must not leave a session that a
    later send would resume without looking."""
    srv = smtp_server(mode="implicit", auth=USER, cert=pki.wrong_name,
                      tls_max_version=ssl.TLSVersion.TLSv1_2)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    assert "issued for" in queued(r)
    assert not cache_file(tmp_path).exists()
    r = run_switchmail(["-q"], b"", None)
    assert srv.messages == [] and not cache_file(tmp_path).exists()
    assert not any(s.tls_resumed for s in srv.sessions)


def test_other_trust_settings_are_not_offered_the_session(tmp_path, smtp_server, pki,
                                                          run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    # pinned now: the session was verified by CA, not by this pin
    send(run_switchmail, conn_cfg(tmp_path, srv, tls_ca_file=None,
                                  tls_fingerprint=pki.server.pin))
    send(run_switchmail)                        # same pin again: resumed
    send(run_switchmail, conn_cfg(tmp_path, srv, tls_verify=False))
    send(run_switchmail, conn_cfg(tmp_path, srv))
    assert resumed(srv, 5) == [False, False, True, False, False]


def test_another_ca_file_content_is_not_offered_the_session(tmp_path, smtp_server, pki,
                                                            run_switchmail):
    """The key covers the CA file as it is: replacing its content (same
    path) means a full handshake under the new trust."""
    ca = Path(tmp_path) / "ca.pem"
    ca.write_bytes(Path(pki.server.ca).read_bytes())
    srv = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv, tls_ca_file=str(ca)))
    ca.write_bytes(Path(pki.server.ca).read_bytes() + b"\n")
    send(run_switchmail)
    assert resumed(srv, 2) == [False, False]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other key", "expired",
                                    "empty", "bad der"])
def test_bad_cache_file_means_a_full_handshake(tmp_path, smtp_server, run_switchmail, damage):
    srv = smtp_server(mode="starttls", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    path = cache_file(tmp_path)
    data = path.read_bytes()
    head, der = data.split(b"\n", 3)[:3], data.split(b"\n", 3)[3]
    if damage == "garbage":
        data = os.urandom(700)
    elif damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "other key":
        data = data.replace(head[1], b"key " + b"0" * 64)
    elif damage == "expired":
        data = data.replace(head[2], b"expires 1000")
    elif damage == "empty":
        data = b""
    elif damage == "bad der":
        data = b"\n".join(head) + b"\n" + bytes(reversed(der))
    path.write_bytes(data)
    send(run_switchmail)
    assert resumed(srv, 2) == [False, False]
    assert len(srv.wait_for(2)) == 2
    assert path.read_bytes().startswith(b"switchmail-tls-session 2\n")  # replaced


def test_session_of_another_server_is_refused_then_replaced(tmp_path, smtp_server,
                                                            run_switchmail):
    """Same name and CA, another server (other ticket keys): it refuses the
    session, the handshake is a full one, and its session is kept."""
    a = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, a))
    before = cache_file(tmp_path).read_bytes()
    b = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, b))
    send(run_switchmail)
    assert resumed(b, 2) == [False, True]
    assert cache_file(tmp_path).read_bytes() != before


def test_offered_session_then_bad_certificate_drops_the_cache(tmp_path, smtp_server, pki,
                                                              run_switchmail):
    """A handshake that fails after a session was offered removes the file:
    the cache must never be the reason mail stays queued."""
    good = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, good))
    assert cache_file(tmp_path).exists()
    bad = smtp_server(mode="implicit", auth=USER, cert=pki.wrong_name)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, bad))
    assert "issued for" in queued(r)
    assert not cache_file(tmp_path).exists()
    assert bad.messages == []


def test_ctl_test_never_resumes(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    ctl = switchmail_binary().parent / "switchmailctl"
    p = subprocess.run([str(ctl), "-C", str(run_switchmail.config_path), "test"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p
    assert b"session resumed" not in p.stdout
    assert resumed(srv, 2) == [False, False]


def test_resumed_session_file_is_kept_until_half_its_time_is_gone(tmp_path, smtp_server,
                                                                 run_switchmail):
    """A resumed send does not rewrite the file (the server's new ticket
    would cost a file per message); once less than half of the hour is
    left, the new session replaces it."""
    import re
    import time
    srv = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    path = cache_file(tmp_path)
    first = path.read_bytes()
    send(run_switchmail)
    assert path.read_bytes() == first
    soon = int(time.time()) + 600
    aged = re.sub(rb"expires \d+", b"expires %d" % soon, first)
    path.write_bytes(aged)
    send(run_switchmail)
    assert resumed(srv, 3) == [False, True, True]
    now = path.read_bytes()
    assert now != aged
    expires = int(re.search(rb"expires (\d+)", now).group(1))
    assert expires > soon + 1200            # a fresh hour (or the server's hint)


@pytest.mark.parametrize("edit", ["checked a day ago", "lives too long"])
def test_old_or_overlong_session_is_not_offered(tmp_path, smtp_server, run_switchmail, edit):
    """Resumed again and again, a session still gets a full handshake (the
    certificate checked anew) once its chain was last checked a day ago;
    a file promising more than the hour we ever grant is not ours."""
    import re
    import time
    srv = smtp_server(mode="implicit", auth=USER)
    send(run_switchmail, conn_cfg(tmp_path, srv))
    path = cache_file(tmp_path)
    data = path.read_bytes()
    now = int(time.time())
    if edit == "checked a day ago":
        data = re.sub(rb"verified \d+", b"verified %d" % (now - 86400 - 60), data)
    else:
        data = re.sub(rb"expires \d+", b"expires %d" % (now + 7200), data)
    path.write_bytes(data)
    send(run_switchmail)
    send(run_switchmail)
    assert resumed(srv, 3) == [False, False, True]
    verified = int(re.search(rb"verified (\d+)", path.read_bytes()).group(1))
    assert verified >= now - 5
