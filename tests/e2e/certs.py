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

Usable without pytest:  /usr/bin/python3 tests/e2e/certs.py DIR  writes the
files and prints the fingerprints.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "switchmail test CA"
UNKNOWN_CA_NAME = "switchmail unknown CA"

# Names and addresses a "localhost" certificate is valid for.
LOCAL_DNS = ("localhost",)
LOCAL_IPS = ("127.0.0.1",)


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


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(common_name: str, now: datetime.datetime):
    key = ec.generate_private_key(ec.SECP256R1())
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
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(common_name: str, dns: Sequence[str], ips: Sequence[str],
               not_before: datetime.datetime, not_after: datetime.datetime,
               issuer: Optional[x509.Certificate],
               issuer_key: Optional[ec.EllipticCurvePrivateKey]):
    """A TLS server certificate; issuer None makes it self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(d) for d in dns]
    san += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False,
            key_agreement=True, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),
            critical=False)
    cert = builder.sign(issuer_key if issuer_key is not None else key,
                        hashes.SHA256())
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: certs.py DIR")
    pki = make_pki(sys.argv[1])
    print("CA", pki.ca)
    for leaf in pki.leaves().values():
        print(f"{leaf.name:16} {leaf.cert}  sha256:{leaf.fingerprint}")
