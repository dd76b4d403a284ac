"""Throwaway PKI for the end-to-end tests, made with `cryptography`.

make_pki(directory) writes, into directory, one test CA and a set of leaf
certificates that exercise every way a client's certificate check can go:

    name            issuer        valid for                 notes
    server          test CA       DNS localhost, IP 127.0.0.1  the good one
    wrong_name      test CA       DNS wrong.example, other.example
    expired         test CA       localhost, 127.0.0.1      validity in the past
    not_yet_valid   test CA       localhost, 127.0.0.1      validity in the future
    unknown_ca      unknown CA    localhost, 127.0.0.1      issuer not in ca.pem
    self_signed     itself        localhost, 127.0.0.1

Every key is EC P-256, so the whole set takes a few milliseconds.  Each leaf
comes back as a Leaf with the paths of its PEM certificate and PEM key (PKCS#8,
unencrypted), the SHA-256 fingerprint of its DER encoding as lower-case hex
and the path of the certificate that verifies it.

Other key types, for the TLS matrix (make_pki() itself stays all P-256):

    ca = make_ca(directory, "rsa-ca", "rsa2048")     # a CA of another type
    leaf = make_leaf(directory, "rsa-pss", "rsa2048", sig="pss", issuer=ca)
    leaf = make_leaf(directory, "p384", "ec-p384", sig="sha384",
                     issuer=pki.issuer)              # under the test CA

key types  ec-p256, ec-p384, rsa2048, ed25519 (KEY_TYPES); rsa1024 too,
           for refusal tests (too small for security level 2)
sig        how the issuer signs: sha256, sha384 (ECDSA or RSA PKCS#1 v1.5),
           sha1 (too weak for security level 2: refusal tests),
           pss (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32: an RSA issuer
           only; made by `openssl x509`, since cryptography 38 cannot) or
           ed25519 (an Ed25519 issuer; no separate digest)
Each such leaf is valid now for DNS localhost and IP 127.0.0.1.

Usable without pytest:  /usr/bin/python3 tests/e2e/certs.py DIR  writes the
files and prints the fingerprints.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "switchmail test CA"
UNKNOWN_CA_NAME = "switchmail unknown CA"

# Names and addresses a "localhost" certificate is valid for.
LOCAL_DNS = ("localhost",)
LOCAL_IPS = ("127.0.0.1",)

# Key types make_ca() and make_leaf() know, and the signatures make_leaf()
# can put on a certificate.
KEY_TYPES = ("ec-p256", "ec-p384", "rsa2048", "ed25519", "rsa1024")
SIGNATURES = ("sha256", "sha384", "pss", "ed25519", "sha1")


@dataclass(frozen=True)
class Leaf:
    """One server certificate and its key, as files."""

    name: str            # "server", "expired", ... (also the file stem)
    cert: str            # path of the PEM certificate
    key: str             # path of the PEM private key (PKCS#8, no password)
    fingerprint: str     # sha256 of the DER certificate, lower-case hex
    ca: str              # path of the PEM certificate that verifies this one
    dns_names: tuple     # subjectAltName DNS entries
    ip_addresses: tuple  # subjectAltName IP entries (as strings)
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def pin(self) -> str:
        """The fingerprint the way switchmail's tls_fingerprint writes it."""
        return "sha256:" + self.fingerprint

    @property
    def fingerprint_colons(self) -> str:
        """Upper-case, colon-separated (openssl x509 -fingerprint style)."""
        fp = self.fingerprint.upper()
        return ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))


@dataclass(frozen=True)
class PKI:
    """Everything make_pki() wrote."""

    directory: str
    ca: str              # PEM of the test CA: the tls_ca_file for good certs
    ca_key: str
    unknown_ca: str      # PEM of the second CA, which nothing trusts
    server: Leaf
    wrong_name: Leaf
    expired: Leaf
    not_yet_valid: Leaf
    unknown_ca_leaf: Leaf
    self_signed: Leaf

    def leaves(self) -> Dict[str, Leaf]:
        """Every leaf by name."""
        return {leaf.name: leaf for leaf in (
            self.server, self.wrong_name, self.expired, self.not_yet_valid,
            self.unknown_ca_leaf, self.self_signed)}

    @property
    def issuer(self) -> "CA":
        """The test CA, as an issuer for make_leaf()."""
        return CA(name=CA_NAME, cert=self.ca, key=self.ca_key,
                  key_type="ec-p256")


@dataclass(frozen=True)
class CA:
    """A CA that make_leaf() can sign with, as files."""

    name: str            # its common name
    cert: str            # path of the PEM certificate (the tls_ca_file)
    key: str             # path of the PEM private key (PKCS#8, no password)
    key_type: str        # one of KEY_TYPES


def _now() -> datetime.datetime:
    # cryptography 38 wants naive UTC datetimes.
    return datetime.datetime.utcnow().replace(microsecond=0)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "switchmail tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write(path: Path, data: bytes, mode: int = 0o644) -> str:
    path.write_bytes(data)
    os.chmod(path, mode)
    return str(path)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _new_key(key_type: str):
    """A fresh private key of one of KEY_TYPES."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa2048", "rsa1024"):
        return rsa.generate_private_key(public_exponent=65537,
                                        key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key type {key_type!r} is not one of {KEY_TYPES}")


def _key_usage(key) -> x509.KeyUsage:
    """What a TLS server key of this type is for: ECDH for EC, RSA key
    transport for RSA, signatures only for Ed25519."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=isinstance(key, ec.EllipticCurvePrivateKey),
        key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False)


def _digest(sig: str):
    """The hash argument of CertificateBuilder.sign() for a signature
    name (None for Ed25519, which has its own)."""
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
            "pss": hashes.SHA256(), "ed25519": None,
            "sha1": hashes.SHA1()}[sig]


def _make_ca(common_name: str, now: datetime.datetime,
             key_type: str = "ec-p256"):
    key = _new_key(key_type)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, None if key_type == "ed25519" else hashes.SHA256())
    )
    return cert, key


def _leaf_extensions(key, dns: Sequence[str], ips: Sequence[str],
                     issuer: Optional[x509.Certificate]):
    """The extensions of a TLS server certificate, as (extension, critical)
    pairs: the same for a certificate built here and for a request that
    `openssl x509 -req` turns into one."""
    san = [x509.DNSName(d) for d in dns]
    san += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    exts = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(key), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName(san), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    if issuer is not None:
        exts.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()), False))
    return exts


def _make_leaf(common_name: str, dns: Sequence[str], ips: Sequence[str],
               not_before: datetime.datetime, not_after: datetime.datetime,
               issuer: Optional[x509.Certificate],
               issuer_key, key=None, algorithm=hashes.SHA256()):
    """A TLS server certificate; issuer None makes it self-signed.  key
    None: a new P-256 key; algorithm: the issuer's hash (None for an
    Ed25519 issuer)."""
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in _leaf_extensions(key, dns, ips, issuer):
        builder = builder.add_extension(ext, critical=critical)
    cert = builder.sign(issuer_key if issuer_key is not None else key,
                        algorithm)
    return cert, key


def make_pki(directory) -> PKI:
    """Write the CA, the second CA and every leaf into directory (created if
    needed) and return their paths and fingerprints."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = _now()
    day = datetime.timedelta(days=1)
    current = (now - day, now + 365 * day)

    ca_cert, ca_key = _make_ca(CA_NAME, now)
    unk_cert, unk_key = _make_ca(UNKNOWN_CA_NAME, now)
    ca_path = _write(d / "ca.pem", _cert_pem(ca_cert))
    ca_key_path = _write(d / "ca.key", _key_pem(ca_key), 0o600)
    unk_path = _write(d / "unknown-ca.pem", _cert_pem(unk_cert))

    # name -> (CN, DNS names, IPs, validity, issuer cert, issuer key)
    specs = {
        "server": ("localhost", LOCAL_DNS, LOCAL_IPS, current, ca_cert, ca_key),
        "wrong_name": ("wrong.example", ("wrong.example", "other.example"), (),
                       current, ca_cert, ca_key),
        "expired": ("localhost", LOCAL_DNS, LOCAL_IPS,
                    (now - 60 * day, now - 30 * day), ca_cert, ca_key),
        "not_yet_valid": ("localhost", LOCAL_DNS, LOCAL_IPS,
                          (now + 30 * day, now + 60 * day), ca_cert, ca_key),
        "unknown_ca_leaf": ("localhost", LOCAL_DNS, LOCAL_IPS, current,
                            unk_cert, unk_key),
        "self_signed": ("localhost", LOCAL_DNS, LOCAL_IPS, current, None, None),
    }
    leaves = {}
    for name, (cn, dns, ips, (nb, na), issuer, issuer_key) in specs.items():
        cert, key = _make_leaf(cn, dns, ips, nb, na, issuer, issuer_key)
        stem = name.replace("_", "-")
        cert_path = _write(d / f"{stem}.pem", _cert_pem(cert))
        key_path = _write(d / f"{stem}.key", _key_pem(key), 0o600)
        if issuer is ca_cert:
            verifier = ca_path
        elif issuer is unk_cert:
            verifier = unk_path
        else:
            verifier = cert_path
        leaves[name] = Leaf(
            name=name, cert=cert_path, key=key_path,
            fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
            ca=verifier, dns_names=tuple(dns), ip_addresses=tuple(ips),
            not_before=nb, not_after=na)

    return PKI(directory=str(d), ca=ca_path, ca_key=ca_key_path,
               unknown_ca=unk_path, **leaves)


def make_ca(directory, stem: str, key_type: str = "ec-p256",
            common_name: Optional[str] = None) -> CA:
    """Write a self-signed CA of key_type as directory/stem.pem and .key
    (signed with SHA-256, or Ed25519) and return it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    name = common_name or f"switchmail {stem} CA"
    cert, key = _make_ca(name, _now(), key_type)
    return CA(name=name, cert=_write(d / f"{stem}.pem", _cert_pem(cert)),
              key=_write(d / f"{stem}.key", _key_pem(key), 0o600),
              key_type=key_type)


def _make_pss_leaf(d: Path, stem: str, key, issuer: CA,
                   issuer_cert: x509.Certificate) -> x509.Certificate:
    """Write d/stem.pem: a localhost certificate for key that issuer signs
    with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt = digest length), valid
    from now for 365 days.  cryptography 38 cannot sign PSS, so a request
    carrying the extensions goes through `openssl x509 -req`."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        _name("localhost"))
    for ext, critical in _leaf_extensions(key, LOCAL_DNS, LOCAL_IPS,
                                          issuer_cert):
        csr = csr.add_extension(ext, critical=critical)
    csr_path = d / f"{stem}.csr"
    _write(csr_path, csr.sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM))
    cert_path = d / f"{stem}.pem"
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr_path),
         "-out", str(cert_path), "-CA", issuer.cert, "-CAkey", issuer.key,
         "-sha256", "-sigopt", "rsa_padding_mode:pss",
         "-sigopt", "rsa_pss_saltlen:digest", "-sigopt", "rsa_mgf1_md:sha256",
         "-copy_extensions", "copyall", "-days", "365",
         "-set_serial", str(x509.random_serial_number())],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "OPENSSL_CONF": "/dev/null"})
    os.unlink(csr_path)
    os.chmod(cert_path, 0o644)
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def make_leaf(directory, stem: str, key_type: str = "ec-p256", *,
              sig: str = "sha256", issuer: CA) -> Leaf:
    """Write a server certificate with a new key_type key, signed by
    issuer with sig (see SIGNATURES), valid now for localhost and
    127.0.0.1, as directory/stem.pem and .key, and return it."""
    if sig not in SIGNATURES:
        raise ValueError(f"signature {sig!r} is not one of {SIGNATURES}")
    if (sig == "ed25519") != (issuer.key_type == "ed25519"):
        raise ValueError(f"a {issuer.key_type} CA cannot make a {sig} signature")
    if sig == "pss" and not issuer.key_type.startswith("rsa"):
        raise ValueError("an RSASSA-PSS signature needs an RSA CA")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = _now()
    day = datetime.timedelta(days=1)
    nb, na = now - day, now + 365 * day
    issuer_cert = x509.load_pem_x509_certificate(Path(issuer.cert).read_bytes())
    issuer_key = serialization.load_pem_private_key(
        Path(issuer.key).read_bytes(), password=None)
    key = _new_key(key_type)
    if sig == "pss":
        cert = _make_pss_leaf(d, stem, key, issuer, issuer_cert)
        nb, na = cert.not_valid_before, cert.not_valid_after
    else:
        cert, _ = _make_leaf("localhost", LOCAL_DNS, LOCAL_IPS, nb, na,
                             issuer_cert, issuer_key, key=key,
                             algorithm=_digest(sig))
        _write(d / f"{stem}.pem", _cert_pem(cert))
    key_path = _write(d / f"{stem}.key", _key_pem(key), 0o600)
    return Leaf(name=stem, cert=str(d / f"{stem}.pem"), key=key_path,
                fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
                ca=issuer.cert, dns_names=LOCAL_DNS, ip_addresses=LOCAL_IPS,
                not_before=nb, not_after=na)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: certs.py DIR")
    pki = make_pki(sys.argv[1])
    print("CA", pki.ca)
    for leaf in pki.leaves().values():
        print(f"{leaf.name:16} {leaf.cert}  sha256:{leaf.fingerprint}")
