#!/usr/bin/python3
"""switchmail demo: one message through the connector, one through the
native relay, both to local test servers, and where each one landed.

    /usr/bin/python3 tests/demo.py /path/to/switchmail [--keep]

1. Makes a throwaway PKI (test CA, certificate for localhost).
2. Starts a "provider" (STARTTLS, AUTH PLAIN/LOGIN as contact@example.org /
   demo-password, certificate by the test CA) and a "native relay" (plain
   SMTP), both on 127.0.0.1 at ports the kernel picks.
3. Writes a config with the connector active (encryption tls, tls_ca_file =
   the test CA) and pipes a shop's message through `switchmail -C cfg -t -i`.
4. Sets "active = false" in the config, as `switchmailctl disconnect` does,
   and sends a second message.
5. Prints a table of what each server received and the log's tail; exits 1
   when a message did not land where it should (2: setup problem).

Needs Debian's python3 with python3-aiosmtpd and python3-cryptography (it
re-runs itself under /usr/bin/python3 when started by another python).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
E2E = HERE / "e2e"
DEBIAN_PYTHON = "/usr/bin/python3"

try:
    sys.path.insert(0, str(E2E))
    import certs
    from conftest import BASE_ENV, make_config, route_for
    from smtpd import SMTPServer
except ImportError as exc:
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) \
            and os.access(DEBIAN_PYTHON, os.X_OK):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, __file__] + sys.argv[1:])
    sys.exit(f"demo: {exc}; run it with {DEBIAN_PYTHON} and the Debian "
             "packages python3-aiosmtpd python3-cryptography python3-pytest "
             "(make deps)")

USER, PASSWORD = "contact@example.org", "demo-password"
NATIVE_FROM = "no-reply@platform.example"
CUSTOMER = "customer@example.net"
RUN_TIMEOUT = 60        # seconds for one switchmail run
LAND_TIMEOUT = 15       # seconds to wait for a message to arrive


def message(subject: str, body: str) -> bytes:
    return (
        'From: "Web Shop" <shop@example.org>\n'
        f"To: {CUSTOMER}\n"
        f"Subject: {subject}\n"
        "\n"
        f"{body}\n"
    ).encode()


MESSAGES = [
    ("Order 1001 confirmed", "provider",
     "Thank you for your order.\nIt ships tomorrow.\n-- Web Shop"),
    ("Order 1001 shipped", "native",
     "Your parcel is on its way.\n-- Web Shop"),
]


def run(binary: str, config: Path, data: bytes) -> subprocess.CompletedProcess:
    """switchmail -C config -t -i, the way a web application calls it."""
    return subprocess.run([binary, "-C", str(config), "-t", "-i"], input=data,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd="/", env=dict(BASE_ENV), timeout=RUN_TIMEOUT)


def wait_landed(servers, expected, subject: str, wait: bool):
    """(server name, MessageRecord) of the server that got `subject`, or
    (None, None).  switchmail normally delivers before it exits; should it
    have handed the message to a background delivery (exit 0, nothing
    received yet), wait up to LAND_TIMEOUT on the server it should reach."""
    def find():
        for server in servers:
            for m in server.messages:
                if m.header("Subject") == subject:
                    return server.name, m
        return None, None

    where, m = find()
    if where is None and wait:
        try:
            expected.wait_message(lambda r: r.header("Subject") == subject,
                                  LAND_TIMEOUT)
        except TimeoutError:
            pass
        where, m = find()
    return where, m


def table(rows, headers) -> str:
    widths = [max(len(str(r[i])) for r in rows + [headers])
              for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line, fmt(headers), line] + [fmt(r) for r in rows] + [line])


def main(argv) -> int:
    args = [a for a in argv[1:] if a != "--keep"]
    keep = "--keep" in argv[1:]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    binary = os.path.abspath(args[0])
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"demo: {binary}: no such executable - build it first (make)",
              file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="switchmail-demo-"))
    failures = []
    rows = []
    with ExitStack() as stack:
        pki = certs.make_pki(work / "pki")
        provider = stack.enter_context(SMTPServer(
            mode="starttls", cert=pki.server, auth=(USER, PASSWORD),
            hostname="smtp.provider.example", name="provider"))
        native = stack.enter_context(SMTPServer(
            hostname="relay.platform.example", name="native"))
        servers = [provider, native]
        print(f"provider      127.0.0.1:{provider.port}  STARTTLS + AUTH "
              f"as {USER}, certificate by '{certs.CA_NAME}'")
        print(f"native relay  127.0.0.1:{native.port}  plain SMTP")

        config = work / "switchmail.conf"
        config.write_text(make_config(
            work,
            connector=route_for(provider, host="localhost", timeout=10),
            native=route_for(native, **{"from": NATIVE_FROM, "timeout": 10}),
            settings={"hostname": "shop.example.org"}))
        os.chmod(config, 0o600)
        print(f"config        {config}\n")

        for i, (subject, expected, body) in enumerate(MESSAGES):
            if i == 1:
                # What `switchmailctl disconnect` does to the file.
                text = config.read_text()
                if "active = true" not in text:
                    failures.append("config has no 'active = true' to switch off")
                config.write_text(text.replace("active = true", "active = false"))
                print("connector switched off (active = false)\n")
            try:
                proc = run(binary, config, message(subject, body))
                code, err = proc.returncode, proc.stderr.decode(errors="replace")
            except subprocess.TimeoutExpired:
                code, err = "timeout", f"still running after {RUN_TIMEOUT}s"
            if err.strip():
                print(f"switchmail stderr for '{subject}':\n{err.rstrip()}\n")
            where, m = wait_landed(
                servers, provider if expected == "provider" else native,
                subject, wait=(code == 0))
            want_from = USER if expected == "provider" else NATIVE_FROM
            if code != 0:
                failures.append(f"'{subject}': switchmail exit {code}")
            if where != expected:
                failures.append(f"'{subject}': landed on {where or 'nothing'}, "
                                f"expected {expected}")
            if m is not None:
                if m.mail_from != want_from:
                    failures.append(f"'{subject}': envelope sender "
                                    f"{m.mail_from}, expected {want_from}")
                if m.rcpt_tos != [CUSTOMER]:
                    failures.append(f"'{subject}': recipients {m.rcpt_tos}")
                if where == "provider" and not (m.tls and m.auth_user == USER):
                    failures.append(f"'{subject}': provider got it without "
                                    "TLS + AUTH")
                security = (f"{m.tls_version} SNI={m.sni} AUTH={m.auth_user}"
                            if m.tls else "plain")
                rows.append([subject, where, code, m.mail_from,
                             ", ".join(m.rcpt_tos), m.raw_header("From"), security])
            else:
                rows.append([subject, "NOT RECEIVED", code, "-", "-", "-", "-"])

        # A message must land once: nothing extra anywhere.
        for server in servers:
            for m in server.messages:
                if [m.header("Subject"), server.name] not in \
                        [[s, e] for s, e, _ in MESSAGES]:
                    failures.append(f"{server.name} got an unexpected message "
                                    f"'{m.header('Subject')}'")

    print(table(rows, ["Message", "Landed on", "Exit", "Envelope sender",
                       "Recipients", "From: as received", "Security"]))
    log = work / "switchmail.log"
    print(f"\nlog {log} (last 15 lines):")
    if log.exists():
        for line in log.read_text(errors="replace").splitlines()[-15:]:
            print("  " + line)
    else:
        print("  (no log file)")

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        print(f"(files kept in {work})")
        return 1
    print("\nOK: the connector route went to the provider, the native route "
          "to the relay.")
    if keep:
        print(f"(files kept in {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
