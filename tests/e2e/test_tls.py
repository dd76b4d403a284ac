"""End-to-end TLS (issue 3): implicit TLS and STARTTLS through the bridge,
certificate verification with errors a user can act on, port/mode mismatch
detection, bounded waits, and the private channel between libESMTP and the
bridge.  Servers run on 127.0.0.1 with a throwaway CA made by the suite.
"""
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import make_config, queued, route_for, switchmail_binary

EX_TEMPFAIL = 75
MSG = b"From: contact@example.org\nSubject: tls\n\nover TLS\n"
USER = ("contact@example.org", "s3cret")



def conn_cfg(tmp_path, server, **over):
    """Connector at `server` by the name "localhost" (so SNI and the name
    check apply); native relay unused (a closed port)."""
    return make_config(tmp_path, connector=route_for(server, host="localhost", **over),
                       native={"host": "127.0.0.1", "port": 9, "encryption": "none",
                               "from": "no-reply@platform.example"})


def test_implicit_tls_with_auth(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    assert r.returncode == 0, r
    (m,) = srv.wait_for(1)
    assert m.tls and m.auth_user == USER[0] and m.sni == "localhost"
    assert m.body_bytes() == b"over TLS\r\n"
    (s,) = srv.wait_closed(1)
    assert s.tls_mode == "implicit"


def test_starttls_with_auth_and_sni(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER, require_starttls=True)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    assert r.returncode == 0, r
    (m,) = srv.wait_for(1)
    assert m.tls and m.sni == "localhost" and m.auth_user == USER[0]
    (s,) = srv.wait_closed(1)
    # nothing but EHLO and STARTTLS before the upgrade
    before = s.commands[:s.commands.index("STARTTLS")]
    assert set(before) <= {"EHLO"}, s.commands


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_tls13_session_tickets_never_hang(tmp_path, smtp_server, run_switchmail, mode):
    """libESMTP alone hangs on TLS 1.3 session tickets (DESIGN §6.4); Python's
    TLS 1.3 server sends two after every handshake."""
    srv = smtp_server(mode=mode, auth=USER, tls_min_version=ssl.TLSVersion.TLSv1_3)
    cfg = conn_cfg(tmp_path, srv)
    for i in range(8):
        r = run_switchmail(["-i", "to@x.example"], MSG, cfg if i == 0 else None, timeout=20)
        assert r.returncode == 0, r
    assert len(srv.wait_for(8)) == 8
    assert all(m.tls_version == "TLSv1.3" for m in srv.messages)


def test_verbose_transcript_shows_tls_and_masks_auth(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER)
    r = run_switchmail(["-v", "-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    assert r.returncode == 0, r
    assert "TLSv1.3" in r.stderr or "TLSv1.2" in r.stderr
    assert "issuer" in r.stderr and "switchmail test CA" in r.stderr
    assert "subject" in r.stderr
    assert USER[1] not in r.stderr
    import base64
    for enc in (base64.b64encode(USER[1].encode()).decode(),
                base64.b64encode(b"\0" + USER[0].encode() + b"\0" + USER[1].encode()).decode()):
        assert enc not in r.stderr


def test_wrong_name_certificate(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER, cert=pki.wrong_name)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    text = queued(r)
    assert "issued for wrong.example, other.example, not for localhost" in text
    assert srv.messages == []
    (s,) = srv.wait_closed(1)
    assert s.commands == [] or s.commands == ["QUIT"][:len(s.commands)]


def test_expired_certificate(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER, cert=pki.expired)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    text = queued(r)
    assert "expired on" in text and "renew" in text
    (s,) = srv.wait_closed(1)
    assert s.commands_after("STARTTLS") == []


def test_not_yet_valid_certificate(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", cert=pki.not_yet_valid)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    text = queued(r)
    assert "not valid before" in text and "clock" in text


def test_unknown_ca_and_tls_ca_file(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER, cert=pki.unknown_ca_leaf)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, tls_ca_file=pki.ca))
    text = queued(r)
    assert "unknown certificate authority" in text
    assert pki.unknown_ca_leaf.pin in text          # ready to pin
    assert srv.messages == []
    # the right CA file makes it work
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       conn_cfg(tmp_path, srv, tls_ca_file=pki.unknown_ca))
    assert r.returncode == 0, r
    srv.wait_for(1)


def test_system_store_without_tls_ca_file(tmp_path, smtp_server, run_switchmail):
    """Without tls_ca_file the system store is used: the test CA is not in it."""
    srv = smtp_server(mode="implicit")
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, tls_ca_file=None))
    text = queued(r)
    assert "unknown certificate authority" in text


def test_self_signed_refused_then_pinned(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER, cert=pki.self_signed)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, tls_ca_file=None))
    text = queued(r)
    assert "self-signed" in text and pki.self_signed.pin in text
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       conn_cfg(tmp_path, srv, tls_ca_file=None,
                                tls_fingerprint="sha256:" + pki.self_signed.fingerprint_colons))
    assert r.returncode == 0, r
    srv.wait_for(1)


def test_pin_mismatch(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER)
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       conn_cfg(tmp_path, srv, tls_fingerprint=pki.self_signed.pin))
    text = queued(r)
    assert f"fingerprint is {pki.server.pin}, not the pinned {pki.self_signed.pin}" in text
    assert srv.messages == []
    (s,) = srv.wait_closed(1)
    assert s.commands_after("STARTTLS") == []


def test_tls_verify_off_works_and_warns(tmp_path, smtp_server, pki, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER, cert=pki.wrong_name)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, tls_verify=False))
    assert r.returncode == 0, r
    assert r.stderr == ""                       # the warning goes to the log
    assert "verification is OFF" in r.log()


def test_ssl_against_plaintext_port(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="starttls", auth=USER)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, encryption="ssl"))
    text = queued(r)
    assert "expects encryption = tls" in text
    assert srv.messages == []


def test_tls_against_implicit_port(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER)
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       conn_cfg(tmp_path, srv, encryption="tls", timeout=2))
    text = queued(r)
    assert "expects encryption = ssl" in text
    assert r.duration < 10
    assert srv.messages == []


def test_starttls_not_offered_never_falls_back(tmp_path, raw_server, run_switchmail):
    plain = raw_server("plain", offer_auth=True)
    cfg = make_config(tmp_path, connector={
        "host": "localhost", "port": plain.port, "encryption": "tls",
        "username": USER[0], "password": USER[1], "from": USER[0], "timeout": 5},
        native={"host": "127.0.0.1", "port": 9, "encryption": "none",
                "from": "no-reply@platform.example"})
    r = run_switchmail(["-i", "to@x.example"], MSG, cfg)
    text = queued(r)
    assert "does not offer STARTTLS" in text
    plain.wait_connections(1)
    time.sleep(0.2)
    verbs = [c.split()[0].upper() for c in plain.commands if c.strip()]
    assert "AUTH" not in verbs and "MAIL" not in verbs, plain.commands
    assert set(verbs) <= {"EHLO", "QUIT"}, plain.commands


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_version_refused(tmp_path, smtp_server, run_switchmail):
    """TLS 1.2 is the floor: a server that stops at TLS 1.1 fails with a
    handshake error (OpenSSL may refuse 1.1 on its side too)."""
    try:
        srv = smtp_server(mode="implicit", tls_max_version=ssl.TLSVersion.TLSv1_1,
                          tls_min_version=ssl.TLSVersion.TLSv1)
    except (ssl.SSLError, ValueError) as e:
        pytest.skip(f"this Python cannot serve TLS 1.1: {e}")
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv))
    text = queued(r)
    assert "TLS handshake" in text and "1.2" in text
    assert srv.messages == []


def test_silent_server_fails_within_timeout(tmp_path, raw_server, run_switchmail):
    silent = raw_server("silent")
    for enc in ("none", "tls", "ssl"):
        cfg = make_config(tmp_path, native={"host": "127.0.0.1", "port": silent.port,
                                            "encryption": enc, "from": "a@b.example",
                                            "timeout": 2, "tls_verify": False})
        r = run_switchmail(["-i", "to@x.example"], MSG, cfg, timeout=30)
        text = queued(r)
        assert "within 2 s" in text or "in time" in text, text
        assert r.duration < 2 + 1.5, (enc, r.duration)


def test_server_closing_early(tmp_path, raw_server, run_switchmail):
    closer = raw_server("close")
    cfg = make_config(tmp_path, native={"host": "127.0.0.1", "port": closer.port,
                                        "encryption": "none", "from": "a@b.example",
                                        "timeout": 2})
    r = run_switchmail(["-i", "to@x.example"], MSG, cfg, timeout=30)
    text = queued(r)
    assert "closed the connection" in text


def test_stall_after_data_is_bounded(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(stall_at="DATA_END")
    cfg = make_config(tmp_path, native=route_for(srv, timeout=1))
    r = run_switchmail(["-i", "to@x.example"], MSG, cfg, timeout=30)
    text = queued(r)
    assert r.duration < 1 * 4 + 3                    # the final-dot wait is 4 x timeout
    assert "did not answer in time" in text


class Blackhole:
    """A port that drops SYNs: a listener with a full accept queue (the
    kernel drops further SYNs; the client retransmits until it gives up)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):      # fill the accept queue (backlog 0 holds 1)
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(c)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(1.0)
        try:
            probe.connect(("127.0.0.1", self.port))
            self.works = False
        except (socket.timeout, OSError):
            self.works = True
        finally:
            probe.close()

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


def test_dropped_syn_fails_within_timeout(tmp_path, run_switchmail):
    hole = Blackhole()
    try:
        if not hole.works:
            pytest.skip("this kernel accepts beyond the backlog")
        cfg = make_config(tmp_path, native={"host": "127.0.0.1", "port": hole.port,
                                            "encryption": "none", "from": "a@b.example",
                                            "timeout": 2})
        r = run_switchmail(["-i", "to@x.example"], MSG, cfg, timeout=30)
    finally:
        hole.close()
    text = queued(r)
    assert "no answer from 127.0.0.1 port" in text and "within 2 s" in text
    assert r.duration < 2 + 1.5


def _sockets_of(pid):
    """(inode → kind) of the sockets process pid holds."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out[target[8:-1]] = fd
    return out


def _proc_table(path):
    with open(path) as f:
        next(f)
        return [line.split() for line in f]


def test_channel_to_libesmtp_is_private(tmp_path, smtp_server, run_switchmail):
    """While a session runs, switchmail listens nowhere (no TCP listener, no
    UNIX socket at all: the relay runs inside libESMTP's I/O calls, on a
    socket that is never connected): another local process has nothing to
    connect to.  Its only TCP connection is the TLS one to the server."""
    srv = smtp_server(mode="implicit", auth=USER, stall_at="DATA_END")
    cfg = tmp_path / "c.conf"
    cfg.write_text(conn_cfg(tmp_path, srv, timeout=1))
    cfg.chmod(0o600)
    proc = subprocess.Popen([str(switchmail_binary()), "-C", str(cfg), "-i", "to@x.example"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    proc.stdin.write(MSG)
    proc.stdin.close()
    try:
        deadline = time.time() + 10
        while time.time() < deadline and not any(
                "DATA" in s.commands for s in srv.sessions):
            time.sleep(0.05)
        inodes = _sockets_of(proc.pid)
        tcp = [r for r in _proc_table("/proc/net/tcp") + _proc_table("/proc/net/tcp6")
               if r[9] in inodes]
        unix = [r for r in _proc_table("/proc/net/unix") if r[6] in inodes]
    finally:
        proc.wait(timeout=30)
    assert tcp, "the TLS connection should be visible"
    assert all(r[3] != "0A" for r in tcp), "a TCP socket listens"
    assert len(tcp) == 1 and int(tcp[0][2].split(":")[1], 16) == srv.port
    assert unix == [], f"UNIX sockets: {unix}"
    (s,) = srv.wait_closed(1)
    assert s.tls_mode == "implicit"


def test_unknown_host_dns(tmp_path, run_switchmail):
    """An unknown host name, with DNS pointed at 127.0.0.1 in a private mount
    namespace so that no query leaves the machine."""
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -m")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    cfg = tmp_path / "dns.conf"
    cfg.write_text(make_config(tmp_path, native={"host": "no-such-host.invalid",
                                                "encryption": "none",
                                                "from": "a@b.example", "timeout": 3}))
    cfg.chmod(0o600)
    script = (f"mount --bind {resolv} /etc/resolv.conf && "
              f"exec {switchmail_binary()} -C {cfg} -i to@x.example")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], input=MSG,
                          capture_output=True, text=False, timeout=30,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert proc.returncode == 0, proc.stderr      # queued for a later attempt
    log = (tmp_path / "switchmail.log").read_text()
    assert "no-such-host.invalid" in log
    assert "not found" in log or "looking up" in log


def test_dns_that_never_answers_is_bounded(tmp_path):
    """A resolver that swallows queries: the lookup gives up at timeout.
    The resolver is a silent UDP socket on 127.0.0.1:53 inside a private
    network namespace, so nothing leaves the machine."""
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:3\n")
    cfg = tmp_path / "dns.conf"
    cfg.write_text(make_config(tmp_path, native={"host": "slow-dns.invalid",
                                                "encryption": "none",
                                                "from": "a@b.example", "timeout": 2}))
    cfg.chmod(0o600)
    hold = ("import socket,sys,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
            "s.bind(('127.0.0.1',53)); time.sleep(60)")
    script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
              f"(/usr/bin/python3 -c \"{hold}\" >/dev/null 2>&1 & sleep 0.5; "
              f"start=$(date +%s.%N); {switchmail_binary()} -C {cfg} -i to@x.example; "
              f"rc=$?; end=$(date +%s.%N); kill $!; echo rc=$rc start=$start end=$end)")
    proc = subprocess.run(["unshare", "-m", "-n", "sh", "-c", script], input=MSG,
                          capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    out, err = proc.stdout.decode(), proc.stderr.decode()
    fields = dict(kv.split("=") for kv in out.split())
    assert fields["rc"] == "0", err                  # queued for a later attempt
    log = (tmp_path / "switchmail.log").read_text()
    assert "slow-dns.invalid" in log and "2 s" in log
    assert float(fields["end"]) - float(fields["start"]) < 2 + 1.5


class RecordingProxy:
    """A TCP proxy on 127.0.0.1 that forwards to a server and records every
    byte the client sent, to prove what crossed the wire."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.sent = bytearray()
        self.threads = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _pipe(self, a, b, record):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if record:
                    self.sent += data
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self):
        try:
            client, _ = self.sock.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))
        for a, b, rec in ((client, upstream, True), (upstream, client, False)):
            t = threading.Thread(target=self._pipe, args=(a, b, rec), daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.sock.close()
        for t in self.threads:
            t.join(timeout=5)


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_no_plaintext_leaves_except_over_tls(tmp_path, smtp_server, run_switchmail, mode):
    """Everything switchmail sends crosses the wire encrypted: the login, the
    envelope and the message never appear in clear (with STARTTLS only
    EHLO and STARTTLS come before the handshake)."""
    srv = smtp_server(mode=mode, auth=USER)
    proxy = RecordingProxy(srv.port)
    secret_body = b"The quick brown fox is a plaintext marker"
    try:
        r = run_switchmail(["-i", "to@x.example"], MSG + secret_body + b"\n",
                           conn_cfg(tmp_path, srv, port=proxy.port))
        assert r.returncode == 0, r
        (m,) = srv.wait_for(1)
        assert secret_body in m.data
    finally:
        proxy.close()
    wire = bytes(proxy.sent)
    assert len(wire) > len(secret_body)
    for marker in (secret_body, b"to@x.example", b"MAIL FROM", b"AUTH",
                   USER[0].encode(), USER[1].encode()):
        assert marker not in wire, marker
    if mode == "starttls":
        head, _, rest = wire.partition(b"STARTTLS\r\n")
        assert head.startswith(b"EHLO ") and head.count(b"\r\n") == 1
        assert rest[:1] == b"\x16"            # a TLS handshake record follows
    else:
        assert wire[:1] == b"\x16"            # TLS from the very first byte


def test_system_store_directory_is_used(tmp_path, smtp_server, pki, run_switchmail):
    """Without tls_ca_file the system store is read as a hashed directory
    (lazily: only the issuers a chain needs), here one holding the test CA,
    given by SSL_CERT_DIR as OpenSSL allows for an unprivileged caller."""
    import shutil
    certdir = tmp_path / "certs"
    certdir.mkdir()
    shutil.copy(pki.ca, certdir / "test-ca.pem")
    subprocess.run(["openssl", "rehash", str(certdir)], check=True)
    assert any(len(p.name) == 10 and p.name[8] == "." for p in certdir.iterdir())
    srv = smtp_server(mode="implicit", auth=USER)
    r = run_switchmail(["-i", "to@x.example"], MSG, conn_cfg(tmp_path, srv, tls_ca_file=None),
                       env={"SSL_CERT_DIR": str(certdir)})
    assert r.returncode == 0, r
    (m,) = srv.wait_for(1)
    assert m.tls and m.auth_user == USER[0]


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_large_message_over_tls_arrives_intact(tmp_path, smtp_server, run_switchmail, mode):
    """3 MB over TLS: the relay gathers libESMTP's small writes into large
    sends (and TLS records); every byte arrives, dot-stuffed lines and the
    line ends included."""
    import hashlib
    import random
    rnd = random.Random(8)
    pool = []
    for _ in range(500):
        n = rnd.choice((0, 1, 7, 76, 500, 997))
        text = "".join(rnd.choice("abcdefghij .,:") for _ in range(n))
        pool.append(("." + text if rnd.random() < 0.1 else text).encode())
    lines, size = [], 0
    while size < 3 * 1024 * 1024:
        lines.append(rnd.choice(pool))
        size += len(lines[-1]) + 1
    body = b"\n".join(lines) + b"\n"
    srv = smtp_server(mode=mode, auth=USER)
    r = run_switchmail(["-i", "to@x.example"],
                       b"From: contact@example.org\nSubject: big\n\n" + body,
                       conn_cfg(tmp_path, srv), timeout=120)
    assert r.returncode == 0, r
    (m,) = srv.wait_for(1, timeout=60)
    got = m.body_bytes()
    want = body.replace(b"\n", b"\r\n")
    assert len(got) == len(want)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest()
