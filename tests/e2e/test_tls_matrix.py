"""End-to-end TLS matrix: switchmail's TLS client against every server key
type, certificate signature algorithm, TLS version and cipher suite it may
meet, through implicit TLS and STARTTLS.

Why: compat/tls.c starts OpenSSL without the legacy EVP *cipher* table
(OPENSSL_INIT_NO_ADD_ALL_CIPHERS) but keeps the *digest* table.  Each case
here sends one message with AUTH and checks that the server got exactly
that message over the TLS version and cipher suite the case forces, so
taking away a table (or anything else a cipher path needs) fails the
cases that use it instead of passing unnoticed.

What needs the digest table, as measured with OpenSSL 3.0 by adding
OPENSSL_INIT_NO_ADD_ALL_DIGESTS: the certificate check.  Every certificate
signed with a separate digest (ECDSA-SHA*, RSA PKCS#1 v1.5 or RSASSA-PSS)
is then refused ("CA signature digest algorithm too weak": the security
level check cannot size the digest), so nearly the whole matrix fails.
libssl itself fetches its digests from the provider: the TLS 1.2 CBC
record HMACs (SHA-1, SHA-256, SHA-384) and the handshake signatures still
work.  Those paths are kept apart from the certificate check here by an
Ed25519 chain (no separate digest anywhere in the certificates or the
handshake signature) and by pinned certificates (tls_fingerprint: no chain
to check), so that a break in them shows as its own failure.

The server's cipher string (SMTPServer ciphers=) only picks TLS 1.2
suites; Python's ssl module cannot choose TLS 1.3 ones, so a TLS 1.3 case
forces the version and expects the suite both sides put first,
TLS_AES_256_GCM_SHA384 (the server's preference wins).

Every case fits switchmail's policy (TLS >= 1.2, security level 2): at
level 2 OpenSSL 3.0 still allows the SHA-1 HMAC of the *_SHA CBC suites (a
MAC, not a signature) and RSA 2048, P-256/P-384 and Ed25519 keys.  The
refusals the policy does make are at the end (TLS 1.1, RSA 1024, a
SHA-1-signed certificate).
"""
import ssl

import pytest

import certs
from conftest import make_config, queued, route_for

MSG = b"From: contact@example.org\nSubject: matrix\n\nthrough the matrix\n"
BODY = b"through the matrix\r\n"
USER = ("contact@example.org", "s3cret")
RCPT = "to@x.example"

TLS12 = "TLSv1.2"
TLS13 = "TLSv1.3"
TLS13_SUITE = "TLS_AES_256_GCM_SHA384"
MODES = ("implicit", "starttls")


# --------------------------------------------------------------------------
# Certificates


@pytest.fixture(scope="module")
def leaves(pki, tmp_path_factory):
    """Server certificates by name: (certs.Leaf, TLS 1.2 authentication,
    "ECDSA" or "RSA").  Ed25519 counts as ECDSA: in TLS 1.2 an EdDSA key
    signs the ECDHE-ECDSA suites."""
    d = tmp_path_factory.mktemp("matrix-pki")
    rsa_ca = certs.make_ca(d, "rsa-ca", "rsa2048")
    ed_ca = certs.make_ca(d, "ed25519-ca", "ed25519")
    return {
        # P-256 leaf, P-256 test CA, ECDSA-SHA256 (the suite's usual one)
        "ec-p256": (pki.server, "ECDSA"),
        # RSA end to end: RSA-2048 leaf, RSA CA, sha256WithRSAEncryption
        "rsa2048": (certs.make_leaf(d, "rsa2048", "rsa2048", issuer=rsa_ca),
                    "RSA"),
        # RSA leaf under the EC test CA: RSA key, ECDSA chain
        "rsa2048-ec-ca": (certs.make_leaf(d, "rsa2048-ec-ca", "rsa2048",
                                          issuer=pki.issuer), "RSA"),
        # P-384 key, ECDSA-SHA384 certificate signature
        "ec-p384": (certs.make_leaf(d, "ec-p384", "ec-p384", sig="sha384",
                                    issuer=pki.issuer), "ECDSA"),
        # Ed25519 key under the EC test CA
        "ed25519": (certs.make_leaf(d, "ed25519", "ed25519",
                                    issuer=pki.issuer), "ECDSA"),
        # Ed25519 end to end: the certificate signature is Ed25519 too
        "ed25519-ed-ca": (certs.make_leaf(d, "ed25519-ed-ca", "ed25519",
                                          sig="ed25519", issuer=ed_ca),
                          "ECDSA"),
        # RSA leaf whose certificate signature is RSASSA-PSS (SHA-256): the
        # verifier finds the digest by the OID in the PSS parameters
        "rsa-pss": (certs.make_leaf(d, "rsa-pss", "rsa2048", sig="pss",
                                    issuer=rsa_ca), "RSA"),
    }


# --------------------------------------------------------------------------
# Helpers


def matrix_cfg(tmp_path, server, **over):
    """Connector at `server` by the name "localhost" (SNI and the name
    check apply), trusting the CA of its certificate (unless `over` says
    otherwise); native relay unused (a closed port)."""
    return make_config(tmp_path,
                       connector=route_for(server, host="localhost", **over),
                       native={"host": "127.0.0.1", "port": 9,
                               "encryption": "none",
                               "from": "no-reply@platform.example"})


def send_one(tmp_path, srv, run_switchmail, version, cipher, **over):
    """Send MSG through srv (route settings `over`) and check: exit 0,
    exactly that message received, over TLS after AUTH, with `version`
    and `cipher`."""
    r = run_switchmail(["-i", RCPT], MSG, matrix_cfg(tmp_path, srv, **over),
                       timeout=20)
    assert r.returncode == 0, r
    assert r.stderr == "", r
    # A TLS failure queues the message (still exit 0): say why at once
    # rather than wait for a message that is not coming.
    new = tmp_path / "spool" / "new"
    assert not (new.is_dir() and any(new.iterdir())), r.log()
    (m,) = srv.wait_for(1, timeout=5)
    (s,) = srv.wait_closed(1)
    assert srv.messages == [m] and srv.rejected == [], srv.dump()
    assert m.tls and m.auth_user == USER[0] and m.sni == "localhost"
    assert m.rcpt_tos == [RCPT] and m.body_bytes() == BODY
    assert s.tls and s.tls_mode == srv.mode and s.errors == [], s.dump()
    assert (s.tls_version, s.tls_cipher) == (version, cipher), s.dump()
    # A full handshake: a resumed session would skip the certificate and
    # the server's signature (each test has its own queue.dir, so its own
    # session cache).
    assert not s.tls_resumed, s.dump()
    assert m.tls_version == version
    assert srv.errors == []


# --------------------------------------------------------------------------
# Key types and certificate signatures, TLS 1.3 and TLS 1.2


KEY_CASES = ("ec-p256", "rsa2048", "rsa2048-ec-ca", "ec-p384", "ed25519",
             "ed25519-ed-ca", "rsa-pss")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("leaf_name", KEY_CASES)
def test_key_type_tls13(tmp_path, smtp_server, run_switchmail, leaves,
                        leaf_name, mode):
    leaf, _ = leaves[leaf_name]
    srv = smtp_server(mode=mode, cert=leaf, auth=USER,
                      require_starttls=mode == "starttls",
                      tls_min_version=ssl.TLSVersion.TLSv1_3)
    send_one(tmp_path, srv, run_switchmail, TLS13, TLS13_SUITE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("leaf_name", KEY_CASES)
def test_key_type_tls12(tmp_path, smtp_server, run_switchmail, leaves,
                        leaf_name, mode):
    leaf, auth = leaves[leaf_name]
    suite = f"ECDHE-{auth}-AES256-GCM-SHA384"
    srv = smtp_server(mode=mode, cert=leaf, auth=USER,
                      require_starttls=mode == "starttls",
                      tls_max_version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    send_one(tmp_path, srv, run_switchmail, TLS12, suite)


# --------------------------------------------------------------------------
# TLS 1.2 cipher suites: AEAD and CBC record layers


CIPHER_CASES = (
    # (suite, leaf)            AEAD: the cipher does its own integrity
    ("ECDHE-RSA-AES128-GCM-SHA256", "rsa2048"),
    ("ECDHE-RSA-AES256-GCM-SHA384", "rsa2048"),
    ("ECDHE-RSA-CHACHA20-POLY1305", "rsa2048"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "ec-p256"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "ec-p256"),
    # CBC: each record carries an HMAC (SHA-384, SHA-256 or SHA-1)
    ("ECDHE-RSA-AES256-SHA384", "rsa2048"),
    ("ECDHE-RSA-AES128-SHA256", "rsa2048"),
    ("ECDHE-RSA-AES128-SHA", "rsa2048"),       # HMAC-SHA1: allowed at level 2
    ("ECDHE-RSA-AES256-SHA", "rsa2048"),
    ("ECDHE-ECDSA-AES256-SHA384", "ec-p256"),
    ("ECDHE-ECDSA-AES128-SHA", "ec-p256"),
    # CBC suite with the PSS-signed certificate: both digest paths at once
    ("ECDHE-RSA-AES128-SHA", "rsa-pss"),
    # The Ed25519 chain: no digest in the certificates or the handshake
    # signature, so only the suite itself can fail
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-AES256-SHA384", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-AES128-SHA256", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-AES128-SHA", "ed25519-ed-ca"),
    ("ECDHE-ECDSA-AES256-SHA", "ed25519-ed-ca"),
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("suite,leaf_name", CIPHER_CASES,
                         ids=[f"{s}-{l}" for s, l in CIPHER_CASES])
def test_tls12_cipher_suite(tmp_path, smtp_server, run_switchmail, leaves,
                            suite, leaf_name, mode):
    leaf, _ = leaves[leaf_name]
    srv = smtp_server(mode=mode, cert=leaf, auth=USER,
                      require_starttls=mode == "starttls",
                      tls_max_version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    send_one(tmp_path, srv, run_switchmail, TLS12, suite)


# --------------------------------------------------------------------------
# Pinned certificates: no chain to check, so only the handshake's own
# signature (CertificateVerify in TLS 1.3, ServerKeyExchange in TLS 1.2:
# RSA-PSS, ECDSA with SHA-256/384, Ed25519) and the record layer are
# left; a broken signature-algorithm path shows here even when the
# certificate check would have failed first.


PIN_CASES = (
    # (leaf, TLS version, TLS 1.2 suite)
    ("rsa2048", TLS13, None),
    ("rsa-pss", TLS13, None),
    ("ec-p256", TLS13, None),
    ("ec-p384", TLS13, None),
    ("ed25519", TLS13, None),
    ("rsa2048", TLS12, "ECDHE-RSA-AES128-SHA"),
    ("rsa-pss", TLS12, "ECDHE-RSA-AES256-GCM-SHA384"),
    ("ec-p256", TLS12, "ECDHE-ECDSA-AES128-SHA"),
    ("ec-p384", TLS12, "ECDHE-ECDSA-AES256-SHA384"),
    ("ed25519", TLS12, "ECDHE-ECDSA-AES128-GCM-SHA256"),
)


@pytest.mark.parametrize("leaf_name,version,suite", PIN_CASES,
                         ids=[f"{l}-{v}" for l, v, _ in PIN_CASES])
def test_pinned_handshake_signature(tmp_path, smtp_server, run_switchmail,
                                    leaves, leaf_name, version, suite):
    leaf, _ = leaves[leaf_name]
    if version == TLS13:
        srv = smtp_server(mode="implicit", cert=leaf, auth=USER,
                          tls_min_version=ssl.TLSVersion.TLSv1_3)
    else:
        srv = smtp_server(mode="implicit", cert=leaf, auth=USER,
                          tls_max_version=ssl.TLSVersion.TLSv1_2,
                          ciphers=suite)
    send_one(tmp_path, srv, run_switchmail, version, suite or TLS13_SUITE,
             tls_fingerprint=leaf.pin, tls_ca_file=None)


# --------------------------------------------------------------------------
# What the policy refuses (TLS >= 1.2, security level 2).  The server is
# let down to level 0 so that it can offer these at all.


WEAK = "DEFAULT:@SECLEVEL=0"


def refused(tmp_path, srv, run_switchmail):
    """Run against srv: the message waits in the queue, nothing arrived;
    returns the log."""
    r = run_switchmail(["-i", RCPT], MSG, matrix_cfg(tmp_path, srv),
                       timeout=20)
    text = queued(r)
    srv.wait_closed(1)
    assert srv.messages == [] and all(
        "MAIL" not in s.commands for s in srv.sessions), srv.dump()
    return text


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_refuses_tls11(tmp_path, smtp_server, run_switchmail):
    srv = smtp_server(mode="implicit", auth=USER, ciphers=WEAK,
                      tls_min_version=ssl.TLSVersion.TLSv1,
                      tls_max_version=ssl.TLSVersion.TLSv1_1)
    text = refused(tmp_path, srv, run_switchmail)
    assert "TLS 1.2 is the minimum" in text


@pytest.mark.filterwarnings("ignore:SHA1 signatures are deprecated")
@pytest.mark.parametrize("key_type,sig,why", [
    ("rsa1024", "sha256", "EE certificate key too weak"),
    ("ec-p256", "sha1", "CA signature digest algorithm too weak"),
], ids=["rsa1024", "sha1-signed"])
def test_refuses_weak_certificate(tmp_path, smtp_server, run_switchmail, pki,
                                  key_type, sig, why):
    leaf = certs.make_leaf(tmp_path / "weak", "weak", key_type, sig=sig,
                           issuer=pki.issuer)
    srv = smtp_server(mode="starttls", cert=leaf, auth=USER, ciphers=WEAK)
    text = refused(tmp_path, srv, run_switchmail)
    assert why in text
    assert srv.sessions[0].commands_after("STARTTLS") == []
