"""Trust (issue 7, DESIGN §7): least privilege, secrets kept secret, hostile
input survived.

Run with Debian's interpreter: /usr/bin/python3 -m pytest -q tests/e2e

1. The INSTALLED binary, run as nobody.  A module fixture runs
   `make install PREFIX=T/usr SYSCONFDIR=T/etc SPOOLDIR=T/spool BUILD=T/build`
   into a fresh T under /tmp (no DESTDIR: the paths compiled in are the real
   ones in T), so the programs are setgid switchmail, the configuration
   0640 root:switchmail and the spool 2770 root:switchmail, as on a server.
   Every command then runs through
       setpriv --reuid=nobody --regid=nogroup --clear-groups env -i [VARS] ...
   with cwd "/".  Needs root (the switchmail group is created by make install
   when missing, as test_install.py documents) and a T not mounted nosuid.
2. password_command (the build/ binary, $SWITCHMAIL_BIN under make asan).
3. The password never leaks: stderr with -v, the log, mailq, switchmailctl
   status and test, the queue files.
4. Injection through -f, -F, recipients, headers, the body and -bs
   arguments, and the documented bounds, each asserting what the SMTP
   server received.
5. Hostile servers (a raw socket server written here): endless, over-long,
   malformed replies and control characters in them.

Tests marked xfail(strict=True, reason="BUG: ...") show a defect of the
binary; they pass (XPASS turns into a failure) once it is fixed, and the
mark must then go.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import pytest

from conftest import REPO, make_config, route_for, switchmail_binary
from smtpd import _RawServer

EX_USAGE, EX_DATAERR, EX_CANTCREAT, EX_NOPERM, EX_CONFIG = 64, 65, 73, 77, 78

IS_ROOT = os.geteuid() == 0
SANITIZED = bool(os.environ.get("SWITCHMAIL_SANITIZED"))
GROUP = "switchmail"
USER, PASSWORD = "mailer@example.org", "S3cr3t-pw-7f2a91"
MAKE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
MSG = b"Subject: security test\n\nhello\n"


def ctl_binary() -> Path:
    return switchmail_binary().with_name("switchmailctl")


def show(p: subprocess.CompletedProcess) -> str:
    """A CompletedProcess for assertion messages."""
    args = p.args if isinstance(p.args, list) else [p.args]
    return (f"$ {' '.join(map(str, args))}\n-> exit {p.returncode}\n"
            f"--- stdout\n{p.stdout!r}\n--- stderr\n{p.stderr!r}")


def as_user(argv: Sequence[Union[str, os.PathLike]], input: bytes = b"",
            env: Optional[Mapping[str, str]] = None, user: str = "nobody",
            group: str = "nogroup", timeout: float = 30
            ) -> subprocess.CompletedProcess:
    """argv as user:group with no supplementary groups, an environment of
    exactly `env` (setpriv itself runs with none), cwd "/"."""
    cmd = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
           "/usr/bin/env", "-i"]
    cmd += [f"{k}={v}" for k, v in (env or {}).items()]
    cmd += [str(a) for a in argv]
    return subprocess.run(cmd, input=input, capture_output=True, env={},
                          cwd="/", timeout=timeout)


def system_utc_offset() -> str:
    """The system zone's current offset (+HHMM), whatever TZ pytest has."""
    out = subprocess.run(["date", "+%z"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=10)
    return out.stdout.strip()


def date_offset(date_header: str) -> str:
    m = re.search(r"([+-]\d{4})\s*$", date_header)
    assert m, date_header
    return m.group(1)


# --------------------------------------------------------------------------
# 1. The installed binary as nobody


class Install:
    """A `make install` tree whose compiled-in paths point into it."""

    def __init__(self, top: Path, ca_source: str):
        self.top = top
        self.sbin = top / "usr" / "sbin"
        self.switchmail = self.sbin / "switchmail"
        self.mailq = self.sbin / "mailq"
        self.conf = top / "etc" / "switchmail.conf"
        self.spool = top / "spool"
        self.logdir = top / "log"
        self.log = self.logdir / "switchmail.log"
        self.ca = top / "etc" / "ca.pem"
        self.bin = top / "bin"            # scripts root owns (0755)
        self.dump = top / "dump"          # 1777: what scripts write
        self.home = top / "home-nobody"   # nobody's own files
        self.gid = grp.getgrnam(GROUP).gr_gid
        self.nobody = pwd.getpwnam("nobody")
        shutil.copy(ca_source, self.ca)
        self.ca.chmod(0o644)
        self.logdir.mkdir()
        os.chown(self.logdir, 0, self.gid)
        self.logdir.chmod(0o2770)
        self.bin.mkdir(mode=0o755)
        self.dump.mkdir()
        self.dump.chmod(0o1777)
        self.home.mkdir()
        os.chown(self.home, self.nobody.pw_uid, self.nobody.pw_gid)
        self.home.chmod(0o755)

    def settings(self) -> Dict:
        return {"queue": {"dir": str(self.spool)},
                "log": {"syslog": False, "file": str(self.log)}}

    def config_text(self, tmp_path: Path, server, **route) -> str:
        """The installed configuration: the native route to `server`
        (STARTTLS, AUTH with its credentials, our readable CA)."""
        return make_config(tmp_path, native=route_for(
            server, host="localhost", tls_ca_file=str(self.ca), **route),
            settings=self.settings())

    def write(self, path: Path, text: str, mode: int = 0o640,
              uid: int = 0, gid: Optional[int] = None) -> Path:
        path.write_text(text)
        os.chown(path, uid, self.gid if gid is None else gid)
        path.chmod(mode)
        return path

    def script(self, name: str, body: str) -> Path:
        path = self.bin / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return path

    def queued(self) -> List[Path]:
        return sorted((self.spool / "new").iterdir())

    def reset(self) -> None:
        """Each test starts with an empty spool, log and scratch dirs."""
        for sub in ("tmp", "new", "failed"):
            for p in (self.spool / sub).iterdir():
                p.unlink()
        for p in self.spool.iterdir():
            if p.is_file():
                p.unlink()
        for d in (self.logdir, self.dump, self.home):
            for p in d.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()


@pytest.fixture(scope="module")
def install_tree(pki):
    if not IS_ROOT:
        pytest.skip("needs root: the install sets owners and the tests "
                    "switch to nobody")
    for tool in ("setpriv", "findmnt", "make", "groupadd"):
        if shutil.which(tool, path=MAKE_ENV["PATH"]) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        pwd.getpwnam("nobody")
        grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no user nobody or group nogroup on this machine")
    top = Path(tempfile.mkdtemp(prefix="switchmail-security-", dir="/tmp"))
    try:
        top.chmod(0o755)          # nobody must reach usr/, etc/, spool/
        opts = subprocess.run(["findmnt", "-no", "OPTIONS", "--target",
                               str(top)], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        if "nosuid" in opts.split(","):
            pytest.skip(f"{top} is on a nosuid mount ({opts}): the setgid "
                        "bit would be ignored")
        out = subprocess.run(
            ["make", "-C", str(REPO), "--no-print-directory",
             f"-j{os.cpu_count() or 2}", "install", f"PREFIX={top}/usr",
             f"SYSCONFDIR={top}/etc", f"SPOOLDIR={top}/spool",
             f"BUILD={top}/build"],
            capture_output=True, text=True, timeout=600, env=MAKE_ENV)
        assert out.returncode == 0, f"make install:\n{out.stdout}\n{out.stderr}"
        inst = Install(top, pki.ca)
        st = inst.switchmail.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == \
            (0o2755, 0, inst.gid), "the installed binary is not setgid"
        st = inst.conf.stat()
        assert (st.st_mode & 0o7777, st.st_gid) == (0o640, inst.gid)
        assert inst.spool.stat().st_mode & 0o7777 == 0o2770
        yield inst
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def inst(install_tree):
    install_tree.reset()
    return install_tree


@pytest.fixture
def provider(smtp_server):
    """STARTTLS, AUTH required for MAIL: the password is really needed."""
    return smtp_server(mode="starttls", auth=(USER, PASSWORD), name="provider")


def test_nobody_sends_through_the_installed_binary(inst, provider, tmp_path):
    inst.write(inst.conf, inst.config_text(tmp_path, provider))
    p = as_user([inst.switchmail, "-i", "to@x.example"], MSG)
    assert p.returncode == 0 and p.stderr == b"", show(p)
    (m,) = provider.wait_for(1)
    assert m.auth_user == USER and m.tls
    assert m.rcpt_tos == ["to@x.example"]
    assert m.body_bytes() == b"hello\r\n"
    assert inst.queued() == [] and list((inst.spool / "tmp").iterdir()) == []
    # The log line was written with the group's right, by nobody.
    assert "result=delivered" in inst.log.read_text()


def test_nobody_cannot_read_the_config_nor_queued_mail_yet_mailq_lists_it(
        inst, provider, tmp_path):
    inst.write(inst.conf, inst.config_text(tmp_path, provider))
    p = as_user(["cat", inst.conf])
    assert p.returncode != 0 and b"Permission denied" in p.stderr, show(p)

    # A message queued by root and one by another user (daemon), both -odq.
    marker = b"BODY-MARKER-5c2e"
    subject = b"SUBJECT-MARKER-77d1"
    msg = b"Subject: " + subject + b"\n\n" + marker + b"\n"
    p = subprocess.run([inst.switchmail, "-odq", "root-to@x.example"],
                       input=msg, capture_output=True, cwd="/",
                       env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert p.returncode == 0, show(p)
    others = [("root", 0)]
    try:
        daemon = pwd.getpwnam("daemon")
        p = as_user([inst.switchmail, "-odq", "daemon-to@x.example"], msg,
                    user="daemon", group=grp.getgrgid(daemon.pw_gid).gr_name)
        assert p.returncode == 0, show(p)
        others.append(("daemon", daemon.pw_uid))
    except KeyError:
        pass
    files = inst.queued()
    assert len(files) == len(others)
    for f in files:
        st = f.stat()
        assert (st.st_mode & 0o7777, st.st_gid) == (0o660, inst.gid), f
        assert st.st_uid in [uid for _, uid in others]
        assert marker in f.read_bytes()       # the body is in there...
        p = as_user(["cat", f])               # ...and nobody cannot open it
        assert p.returncode != 0 and b"Permission denied" in p.stderr, show(p)
        assert marker not in p.stdout
    p = as_user(["ls", inst.spool / "new"])
    assert p.returncode != 0 and b"Permission denied" in p.stderr, show(p)
    assert provider.sessions == []            # -odq: nothing sent

    # mailq (the installed link) lists the metadata, never the content.
    p = as_user([inst.mailq])
    assert p.returncode == 0, show(p)
    for f in files:
        assert f.name.encode() in p.stdout, show(p)
    assert b"<root@example.org>" in p.stdout
    assert b"root-to@x.example" in p.stdout
    assert marker not in p.stdout and subject not in p.stdout, show(p)
    assert marker not in p.stderr and subject not in p.stderr


@pytest.mark.parametrize("how", ["-C FILE", "-CFILE", "SWITCHMAIL_CONFIG"])
def test_own_config_drops_the_group(inst, provider, smtp_server, tmp_path, how):
    """A caller-chosen configuration costs the setgid privilege, before the
    file is read: the spool, the real configuration, a password_file of the
    group and an @include of the real configuration are all out of reach."""
    relay = smtp_server(name="relay")          # plain, no AUTH
    inst.write(inst.conf, inst.config_text(tmp_path, provider))
    secret = inst.write(inst.top / "etc" / "secret", PASSWORD + "\n")
    nobody = (inst.nobody.pw_uid, inst.nobody.pw_gid)

    def own(name: str, text: str) -> Path:
        return inst.write(inst.home / name, text, 0o600, *nobody)

    seen: List[bytes] = []

    def run(conf: Path, args=("to@x.example",), input=MSG):
        if how == "-C FILE":
            p = as_user([inst.switchmail, "-C", conf, *args], input)
        elif how == "-CFILE":
            p = as_user([inst.switchmail, f"-C{conf}", *args], input)
        else:
            p = as_user([inst.switchmail, *args], input,
                        env={"SWITCHMAIL_CONFIG": str(conf)})
        seen.extend((p.stdout, p.stderr))
        return p

    # Control: nobody's own configuration with nobody's own spool works.
    own_spool = inst.home / "spool"
    own_spool.mkdir()
    os.chown(own_spool, *nobody)
    ok = own("ok.conf", make_config(tmp_path, native=route_for(relay), settings={
        "queue": {"dir": str(own_spool)}, "log": {"syslog": False}}))
    p = run(ok)
    assert p.returncode == 0, show(p)
    relay.wait_for(1)

    # The real spool: not writable without the group.
    spool_conf = own("spool.conf", make_config(
        tmp_path, native=route_for(relay),
        settings={"queue": {"dir": str(inst.spool)}, "log": {"syslog": False}}))
    p = run(spool_conf)
    assert p.returncode == EX_CANTCREAT, show(p)
    assert str(inst.spool).encode() in p.stderr and b"Permission denied" in p.stderr
    p = run(spool_conf, args=("-bp",), input=b"")
    assert p.returncode == EX_NOPERM and b"Permission denied" in p.stderr, show(p)

    # The real configuration, 0640 root:switchmail: cannot read.
    p = run(inst.conf)
    assert p.returncode == EX_NOPERM, show(p)
    assert b"cannot read: Permission denied" in p.stderr, show(p)
    assert str(inst.conf).encode() in p.stderr

    # ... nor through @include.
    inc = own("include.conf", f'@include "{inst.conf}"\n')
    p = run(inc)
    assert p.returncode in (EX_CONFIG, EX_NOPERM), show(p)
    assert b"cannot open include file" in p.stderr, show(p)

    # A password_file readable by the group only: cannot read.
    pf = own("pwfile.conf", make_config(
        tmp_path, native=route_for(relay, username=USER, password_file=str(secret),
                                   allow_plaintext_auth=True),
        settings={"queue": {"dir": str(own_spool)}, "log": {"syslog": False}}))
    p = run(pf)
    assert p.returncode == EX_NOPERM, show(p)
    assert b"cannot read: Permission denied" in p.stderr, show(p)

    for out in seen:
        assert PASSWORD.encode() not in out
    assert provider.sessions == []
    assert len(relay.messages) == 1
    assert inst.queued() == [] and list((inst.spool / "tmp").iterdir()) == []


def test_world_readable_config_with_a_password_is_refused(inst, provider,
                                                          tmp_path):
    text = inst.config_text(tmp_path, provider)
    inst.write(inst.conf, text, 0o644)
    p = as_user([inst.switchmail, "to@x.example"], MSG)
    assert p.returncode == EX_CONFIG, show(p)
    assert b"chmod" in p.stderr and b"640" in p.stderr, show(p)
    assert b"every user can read" in p.stderr
    # The caller's own file (privilege dropped) is held to the same rule.
    own = inst.write(inst.home / "own.conf", text, 0o644,
                     inst.nobody.pw_uid, inst.nobody.pw_gid)
    p = as_user([inst.switchmail, "-C", own, "to@x.example"], MSG)
    assert p.returncode == EX_CONFIG, show(p)
    assert b"chmod" in p.stderr and b"640" in p.stderr, show(p)
    assert PASSWORD.encode() not in p.stderr
    assert provider.sessions == []


@pytest.mark.parametrize("mode,owner", [(0o662, "root"), (0o640, "nobody")],
                         ids=["mode-0662", "owned-by-nobody"])
def test_config_writable_by_non_root_is_refused(inst, provider, tmp_path,
                                                mode, owner):
    uid = 0 if owner == "root" else inst.nobody.pw_uid
    inst.write(inst.conf, inst.config_text(tmp_path, provider), mode, uid)
    p = as_user([inst.switchmail, "to@x.example"], MSG)
    assert p.returncode == EX_CONFIG, show(p)
    assert b"chmod" in p.stderr or b"chown" in p.stderr, show(p)
    assert provider.sessions == []


@pytest.mark.parametrize("tz", [":/etc/passwd", "SMT-05:17"])
def test_setgid_environment_is_sanitised(inst, provider, tmp_path, tz):
    """LD_PRELOAD, a hostile TZ and a bogus locale reach nothing: the binary
    runs, says nothing, and dates the message in the system zone."""
    inst.write(inst.conf, inst.config_text(tmp_path, provider))
    env = {"LD_PRELOAD": "/nonexistent.so", "LD_LIBRARY_PATH": "/nonexistent",
           "TZ": tz, "LANG": "xx", "LC_ALL": "xx", "MALLOC_CHECK_": "3",
           "HOSTALIASES": "/etc/passwd", "SWITCHMAIL_PROVIDERS": "/etc/passwd"}
    p = as_user([inst.switchmail, "-i", "to@x.example"], MSG, env=env)
    assert p.returncode == 0 and p.stderr == b"", show(p)
    (m,) = provider.wait_for(1)
    assert m.auth_user == USER
    assert date_offset(m.header("Date")) == system_utc_offset()


def test_tz_is_honoured_without_setgid(smtp_server, run_switchmail, tmp_path):
    """The control for the test above: unprivileged, TZ is the caller's
    business and shows in Date: (so the test above can tell)."""
    relay = smtp_server()
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       {"native": route_for(relay)}, env={"TZ": "SMT-05:17"})
    assert r.returncode == 0, r
    (m,) = relay.wait_for(1)
    assert date_offset(m.header("Date")) == "+0517"


def test_password_command_of_the_setgid_binary_gets_path_only(inst, provider,
                                                              tmp_path):
    dump = inst.dump / "env.txt"
    cmd = inst.script("pw-env.sh", f"env > {dump}\nprintf '%s\\n' '{PASSWORD}'\n")
    inst.write(inst.conf, inst.config_text(
        tmp_path, provider, password=None, password_command=[str(cmd)]))
    env = {"LD_LIBRARY_PATH": "/nonexistent", "LD_FOO": "bar",
           "LD_PRELOAD": "/nonexistent.so", "HOME": "/home/evil",
           "SM_MARKER": "leaked", "TZ": "SMT-05:17", "LANG": "xx"}
    p = as_user([inst.switchmail, "-i", "to@x.example"], MSG, env=env)
    assert p.returncode == 0 and p.stderr == b"", show(p)
    (m,) = provider.wait_for(1)
    assert m.auth_user == USER
    child = dict(line.split("=", 1) for line in dump.read_text().splitlines())
    assert child.get("PATH") == "/usr/sbin:/usr/bin:/sbin:/bin", child
    assert set(child) <= {"PATH", "PWD"}, child    # dash adds PWD itself
    assert not any(k.startswith("LD_") for k in child)


def test_no_core_dump_while_the_password_is_in_memory(smtp_server,
                                                      run_switchmail):
    """RLIMIT_CORE is 0 from the start, whatever the caller allowed."""
    relay = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    run_switchmail.write_config({"native": route_for(relay, host="localhost")})
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    limit = resource.RLIM_INFINITY if IS_ROOT else hard

    def allow_cores():
        resource.setrlimit(resource.RLIMIT_CORE, (limit, limit))

    binary = switchmail_binary()
    proc = subprocess.Popen([str(binary), "-C", str(run_switchmail.config_path),
                             "-bs"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
                            cwd="/", preexec_fn=allow_cores)
    try:
        assert proc.stdout.readline().startswith(b"220 ")   # config loaded
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(l for l in limits.splitlines()
                    if l.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], line
    finally:
        proc.communicate(b"QUIT\r\n", timeout=30)


def test_spool_and_log_are_never_open_to_others(closed_port, tmp_path):
    """Whatever the caller's umask (000 here), nothing switchmail creates
    is readable or writable by others: queue files 0660, dirs 0770."""
    spool = tmp_path / "spool"
    log = tmp_path / "switchmail.log"
    conf = tmp_path / "sm.conf"
    conf.write_text(make_config(tmp_path, native={
        "host": "127.0.0.1", "port": closed_port, "encryption": "none",
        "from": "n@example.org", "timeout": 2}))
    conf.chmod(0o600)
    p = subprocess.run([str(switchmail_binary()), "-C", str(conf), "to@x.example"],
                       input=MSG, capture_output=True, cwd="/",
                       env={"PATH": "/usr/bin:/bin"}, timeout=60,
                       preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, show(p)
    (queued,) = (spool / "new").iterdir()
    assert queued.stat().st_mode & 0o7777 == 0o660
    for d in ("tmp", "new"):
        assert (spool / d).stat().st_mode & 0o7777 == 0o770
    for path in [log, *spool.rglob("*")]:
        assert path.stat().st_mode & 0o007 == 0, (path, oct(path.stat().st_mode))


# --------------------------------------------------------------------------
# 2. password_command


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def command_route(server, command) -> Dict:
    return {"native": route_for(server, host="localhost", password=None,
                                password_command=command)}


def test_password_command_output_is_the_password_and_env_is_path_only(
        smtp_server, run_switchmail, tmp_path):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    dump = tmp_path / "env.txt"
    cmd = script(tmp_path, "pw.sh", f"env > {dump}\n"
                 f"printf '%s\\r\\n' '{PASSWORD}'\n")   # CRLF is trimmed
    r = run_switchmail(["-i", "to@x.example"], MSG, command_route(server, [cmd]),
                       env={"LD_LIBRARY_PATH": "/nonexistent", "LD_FOO": "bar",
                            "HOME": "/home/evil", "SM_MARKER": "leaked",
                            "PATH": "/usr/bin:/bin:/opt/evil"})
    assert r.returncode == 0 and r.stderr == "", r
    (m,) = server.wait_for(1)
    assert m.auth_user == USER
    child = dict(line.split("=", 1) for line in dump.read_text().splitlines())
    assert child.get("PATH") == "/usr/sbin:/usr/bin:/sbin:/bin", child
    assert set(child) <= {"PATH", "PWD"}, child    # dash adds PWD itself
    assert not any(k.startswith("LD_") for k in child)


@pytest.mark.parametrize("body,words", [
    ("echo partial\nexit 3\n", ["exit status 3"]),
    ("exit 0\n", ["printed no password"]),
    ("printf '\\n\\n'\n", ["printed no password"]),
    ("kill -TERM $$\n", ["signal 15"]),
], ids=["exit-3", "silent", "blank-lines", "killed"])
def test_password_command_failure_is_reported(smtp_server, run_switchmail,
                                              tmp_path, body, words):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    cmd = script(tmp_path, "pw.sh", body)
    r = run_switchmail(["-i", "to@x.example"], MSG, command_route(server, [cmd]))
    assert r.returncode == EX_CONFIG, r
    assert "password_command" in r.stderr and cmd in r.stderr, r
    for w in words:
        assert w in r.stderr, r
    assert server.sessions == []


def test_password_command_must_be_an_absolute_path(smtp_server, run_switchmail,
                                                   tmp_path):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    r = run_switchmail(["-i", "to@x.example"], MSG,
                       command_route(server, "echo " + PASSWORD))
    assert r.returncode == EX_CONFIG, r
    assert "absolute path" in r.stderr and "without a shell" in r.stderr, r


def test_password_command_that_hangs_is_killed(smtp_server, run_switchmail,
                                               tmp_path):
    server = smtp_server(mode="starttls", auth=(USER, PASSWORD))
    cmd = script(tmp_path, "slow.sh", "exec sleep 20\n")
    r = run_switchmail(["-i", "to@x.example"], MSG, command_route(server, [cmd]),
                       timeout=30)
    assert r.returncode == EX_CONFIG, r
    assert r.duration < 14, r
    assert "did not finish" in r.stderr and cmd in r.stderr, r
    assert server.sessions == []


def test_password_command_is_not_run_through_a_shell(smtp_server,
                                                     run_switchmail, tmp_path):
    """The words are split at blanks and run as they are: ; $( ) ` | are
    just characters of the password echo prints."""
    short = Path(tempfile.mkdtemp(prefix="sm-"))   # the password <= 255
    try:
        touched = [short / n for n in ("semi", "subst", "tick", "pipe")]
        command = (f"/bin/echo secret; touch {touched[0]} $(touch {touched[1]}) "
                   f"`touch {touched[2]}` | tee {touched[3]}")
        literal = command.split(" ", 1)[1]
        server = smtp_server(mode="starttls", auth=(USER, literal))
        r = run_switchmail(["-i", "to@x.example"], MSG,
                           command_route(server, command))
        assert r.returncode == 0, r
        (m,) = server.wait_for(1)
        assert m.auth_user == USER      # the literal words were the password
        for t in touched:
            assert not t.exists(), t
    finally:
        shutil.rmtree(short)


# --------------------------------------------------------------------------
# 3. The password never leaks


def secret_forms(user: str, password: str) -> List[bytes]:
    """The password and what AUTH PLAIN and LOGIN make of it."""
    def b64(s: str) -> bytes:
        return base64.b64encode(s.encode())
    return [password.encode(), b64(password), b64(f"\0{user}\0{password}"),
            b64(f"{user}\0{user}\0{password}"),
            password.encode().hex().encode()]


def test_password_never_leaks(smtp_server, run_switchmail, tmp_path):
    plain = smtp_server(mode="starttls", auth=(USER, PASSWORD),
                        auth_mechanisms=("PLAIN",), mail_reply="451 4.3.0 later",
                        name="plain")
    login = smtp_server(mode="starttls", auth=(USER, PASSWORD),
                        auth_mechanisms=("LOGIN",), mail_reply="451 4.3.0 later",
                        name="login")
    refusing = smtp_server(mode="starttls", auth=(USER, PASSWORD),
                           auth_reply="535 5.7.8 go away", name="refusing")

    def config(server):
        return {"native": route_for(server, host="localhost")}

    outputs: Dict[str, bytes] = {}
    r = run_switchmail(["-v", "-v", "a@x.example"], MSG, config(plain))
    assert r.returncode == 0, r
    outputs["send -v PLAIN"] = r.stdout_bytes + r.stderr_bytes
    r = run_switchmail(["-v", "-v", "b@x.example"], MSG, config(login))
    assert r.returncode == 0, r
    outputs["send -v LOGIN"] = r.stdout_bytes + r.stderr_bytes
    r = run_switchmail(["-q", "-v", "-v"], b"", config(login))
    assert r.returncode == 0, r
    outputs["queue run -v"] = r.stdout_bytes + r.stderr_bytes
    r = run_switchmail(["-v", "-v", "c@x.example"], MSG, config(refusing))
    assert r.returncode == 0, r                 # deferred: queued
    outputs["send -v refused"] = r.stdout_bytes + r.stderr_bytes
    r = run_switchmail(["-v", "-bs"], b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
                       b"RCPT TO:<d@x.example>\r\nDATA\r\nSubject: s\r\n\r\nb\r\n"
                       b".\r\nQUIT\r\n", config(login))
    outputs["-bs -v"] = r.stdout_bytes + r.stderr_bytes
    r = run_switchmail([], b"", None, argv0="mailq")
    assert r.returncode == 0 and "4 messages waiting" in r.stdout, r
    outputs["mailq"] = r.stdout_bytes + r.stderr_bytes
    ctl = [str(ctl_binary()), "-C", str(run_switchmail.config_path)]
    for args in (["status"], ["-v", "status"], ["--json", "status"],
                 ["-v", "test"]):
        p = subprocess.run(ctl + args, capture_output=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin"}, cwd="/")
        outputs["switchmailctl " + " ".join(args)] = p.stdout + p.stderr
    assert b"(set)" in outputs["switchmailctl status"]
    outputs["log"] = run_switchmail.log_path.read_bytes()
    files = [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert len([p for p in files if p.parent.name == "new"]) == 4
    for p in files:
        outputs[str(p)] = p.read_bytes()

    # The secret really was used, with both mechanisms.
    for server, mech in ((plain, "PLAIN"), (login, "LOGIN")):
        attempts = [a for s in server.sessions for a in s.auth_attempts]
        assert attempts and all(a.mechanism == mech and a.success
                                for a in attempts), server.dump()
    assert "AUTH" in outputs["send -v PLAIN"].decode(errors="replace")
    for where, data in outputs.items():
        for needle in secret_forms(USER, PASSWORD):
            assert needle not in data, f"{needle!r} in {where}:\n{data[:4000]!r}"


# --------------------------------------------------------------------------
# 4. Injection and bounds


@pytest.fixture
def relay(smtp_server):
    return smtp_server(ehlo_extra=("PIPELINING",), name="relay")


def relay_config(server) -> Dict:
    # Any caller sender is kept: -f reaches MAIL FROM when it is accepted.
    return {"native": route_for(server, allowed_senders=["*"])}


def nothing_sent(server) -> None:
    assert server.sessions == [] and server.messages == [], server.dump()


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_sender_with_a_line_break_is_refused(relay, run_switchmail, eol):
    r = run_switchmail(["-f", f"a@b.example{eol}RCPT TO:<evil@x.example>",
                        "to@x.example"], MSG, relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "-f" in r.stderr and "line break" in r.stderr, r
    nothing_sent(relay)


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_full_name_with_a_line_break_is_refused(relay, run_switchmail, eol):
    r = run_switchmail(["-f", "a@b.example", "-F", f"Name{eol}Bcc: evil@x.example",
                        "to@x.example"], MSG, relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "-F" in r.stderr and "line break" in r.stderr, r
    nothing_sent(relay)


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_recipient_with_a_line_break_is_refused(relay, run_switchmail, eol):
    r = run_switchmail([f"to@x.example{eol}RCPT TO:<evil@x.example>"], MSG,
                       relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "line break" in r.stderr, r
    nothing_sent(relay)


def one_transaction(server, rcpts):
    (m,) = server.wait_for(1)
    (s,) = server.wait_closed(1)
    verbs = [v for v in s.commands if v in ("MAIL", "RCPT", "DATA")]
    assert verbs == ["MAIL"] + ["RCPT"] * len(rcpts) + ["DATA"], s.dump()
    assert m.rcpt_tos == rcpts
    assert "evil" not in m.mail_from
    return m


SMUGGLED = (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<evil@x.example>\r\n"
            b"DATA\r\nevil\r\n.\r\nQUIT\r\n")


def test_smtp_commands_in_a_header_are_data(relay, run_switchmail):
    msg = (b"Subject: s\nTo: a@x.example\r\n.\r\n" + SMUGGLED +
           b"\r\nbody\r\n")
    r = run_switchmail(["-i", "to@x.example"], msg, relay_config(relay))
    assert r.returncode == 0, r
    m = one_transaction(relay, ["to@x.example"])
    assert b"\r\n.\r\n" + SMUGGLED in m.data      # dot-stuffed, unstuffed
    assert m.data.endswith(b"body\r\n")


def test_smtp_commands_in_the_body_are_data_with_i(relay, run_switchmail):
    body = b"line1\r\n.\r\n" + SMUGGLED + b"..two\r\n"
    r = run_switchmail(["-i", "to@x.example"], b"Subject: s\r\n\r\n" + body,
                       relay_config(relay))
    assert r.returncode == 0, r
    m = one_transaction(relay, ["to@x.example"])
    assert m.body_bytes() == body


def test_dot_line_ends_the_message_without_i(relay, run_switchmail):
    r = run_switchmail(["to@x.example"], b"Subject: s\n\nline1\n.\n" +
                       SMUGGLED, relay_config(relay))
    assert r.returncode == 0, r
    m = one_transaction(relay, ["to@x.example"])
    assert m.body_bytes() == b"line1\r\n"


@pytest.mark.parametrize("msg,where", [
    (b"Subject: a\x00b\n\nbody\n", "headers"),
    (b"Subject: s\n\nbo\x00dy\n", "body"),
], ids=["header", "body"])
def test_nul_is_refused(relay, run_switchmail, msg, where):
    r = run_switchmail(["to@x.example"], msg, relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "NUL" in r.stderr and where in r.stderr, r
    nothing_sent(relay)


def test_bs_arguments_with_cr_lf_nul_are_refused(relay, run_switchmail):
    """Each line, and the replies it must get (a set of allowed codes per
    reply): CR or NUL inside MAIL FROM / RCPT TO is refused; an LF splits
    the line in two, each refused on its own."""
    script = [
        (b"EHLO client.example\r\n", [{250}]),
        (b"MAIL FROM:<a@b.example\rRCPT TO:<evil@x.example>>\r\n", [{501}]),
        (b"MAIL FROM:<a@b.example\x00RCPT TO:<evil@x.example>>\r\n", [{500, 501}]),
        (b"MAIL FROM:<a@b.example\r>\r\n", [{501}]),
        (b"MAIL FROM:<a@b.example>\r\n", [{250}]),
        (b"RCPT TO:<to@x.example\rRCPT TO:<evil@x.example>>\r\n", [{501}]),
        (b"RCPT TO:<to@x.example\x00evil@x.example>\r\n", [{500, 501}]),
        (b"RCPT TO:<evil@x.example\r>\r\n", [{501}]),
        (b"RCPT TO:<to@x.example\nRCPT TO:<evil@x.example>>\r\n", [{501}, {501}]),
        (b"RCPT TO:<to@x.example>\r\n", [{250}]),
        (b"DATA\r\n", [{354}]),
        (b"Subject: s\r\n\r\nhello\r\n.\r\n", [{250}]),
        (b"QUIT\r\n", [{221}]),
    ]
    r = run_switchmail(["-bs"], b"".join(line for line, _ in script),
                       relay_config(relay))
    assert r.returncode == 0, r
    codes = [int(l[:3]) for l in r.stdout.split("\r\n")[:-1] if l[3:4] != "-"]
    expected = [{220}] + [c for _, replies in script for c in replies]
    assert len(codes) == len(expected), r.stdout
    for got, allowed in zip(codes, expected):
        assert got in allowed, r.stdout
    m = one_transaction(relay, ["to@x.example"])
    assert m.mail_from == "a@b.example"
    assert m.body_bytes() == b"hello\r\n"
    text = "\n".join(line for s in relay.sessions for _, line in s.transcript)
    assert "evil" not in text


def test_full_name_cannot_smuggle_an_address_into_from(relay, run_switchmail):
    """-F is a display name: quotes, commas and brackets in it stay inside
    the quoted phrase, the From: field still names one mailbox."""
    name = 'Evil" <evil@x.example>, "X \\ (c)'
    r = run_switchmail(["-f", "a@b.example", "-F", name, "to@x.example"], MSG,
                       relay_config(relay))
    assert r.returncode == 0, r
    m = one_transaction(relay, ["to@x.example"])
    from email.utils import getaddresses
    (addr,) = getaddresses([m.raw_header("From")])
    assert addr == (name, "a@b.example"), m.raw_header("From")


def test_bs_garbage_ends_cleanly(relay, run_switchmail):
    """Random octets (NULs, bare CRs, 8-bit, over-long lines) on -bs: every
    reply is a well-formed SMTP line, nothing is relayed, no crash."""
    import random
    rnd = random.Random(7)
    junk = bytearray(rnd.randbytes(300_000))
    for i in range(0, len(junk), 997):          # some short lines too
        junk[i:i + 2] = b"\r\n"
    r = run_switchmail(["-bs"], bytes(junk), relay_config(relay), timeout=60)
    assert r.returncode >= 0, r                 # not killed by a signal
    lines = r.stdout_bytes.split(b"\r\n")
    assert lines[-1] == b"" and lines[0].startswith(b"220 "), r
    for line in lines[:-1]:
        assert re.fullmatch(rb"[2-5]\d\d[ -][\x20-\x7e]*", line), line
    assert lines[-2].startswith(b"421 "), r     # too many bad commands
    nothing_sent(relay)


def test_ten_thousand_recipients_go_and_one_more_is_refused(relay,
                                                           run_switchmail):
    def msg(n):
        to = ",\n ".join(f"r{i}@x.example" for i in range(n))
        return f"To: {to}\nSubject: many\n\nbody\n".encode()
    r = run_switchmail(["-t", "-i"], msg(10001), relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "10000" in r.stderr, r
    nothing_sent(relay)
    r = run_switchmail(["-t", "-i"], msg(10000), timeout=120)
    assert r.returncode == 0, r
    (m,) = relay.wait_for(1)
    assert len(m.rcpt_tos) == 10000
    assert set(m.rcpt_tos) == {f"r{i}@x.example" for i in range(10000)}
    assert all(len(l) <= 998 for l in m.data.split(b"\r\n"))


def test_header_block_over_256_kib_is_refused(relay, run_switchmail):
    headers = b"".join(b"X-Filler-%d: %s\n" % (i, b"y" * 100)
                       for i in range(3000))          # ~330 KiB
    r = run_switchmail(["to@x.example"], headers + b"\nbody\n",
                       relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "256 KiB" in r.stderr, r
    nothing_sent(relay)
    r = run_switchmail(["to@x.example"], b"Subject: " + b"x " * (150 * 1024) +
                       b"\n\nbody\n")                 # one 300 KiB field
    assert r.returncode == EX_DATAERR and "256 KiB" in r.stderr, r
    nothing_sent(relay)


def test_header_line_without_space_over_998_is_refused(relay, run_switchmail):
    r = run_switchmail(["to@x.example"], b"Subject: " + b"x" * 2000 +
                       b"\n\nbody\n", relay_config(relay))
    assert r.returncode == EX_DATAERR, r
    assert "998" in r.stderr, r
    nothing_sent(relay)


def test_header_line_with_spaces_over_998_is_folded(relay, run_switchmail):
    words = " ".join(f"w{i:04d}" for i in range(400))     # 2399 octets
    r = run_switchmail(["to@x.example"], f"Subject: {words}\n\nbody\n".encode(),
                       relay_config(relay))
    assert r.returncode == 0, r
    (m,) = relay.wait_for(1)
    assert all(len(l) <= 998 for l in m.data.split(b"\r\n")), m.data[:3000]
    assert m.header("Subject") == words


def test_body_line_over_998_is_split(relay, run_switchmail):
    line = bytes(b"abcdefghij"[i % 10] for i in range(5000))
    r = run_switchmail(["to@x.example"], b"Subject: s\n\n" + line + b"\nend\n",
                       relay_config(relay))
    assert r.returncode == 0, r
    (m,) = relay.wait_for(1)
    body = m.body_bytes()
    lines = body.split(b"\r\n")
    assert all(len(l) <= 998 for l in lines)
    assert lines[:6] == [line[i:i + 998] for i in range(0, 5000, 998)]
    assert b"".join(lines[:6]) == line and lines[6:] == [b"end", b""]


def test_invalid_utf8_in_headers_passes_untouched(relay, run_switchmail):
    """Nothing in switchmail validates header encodings (message.c only
    notes 8-bit octets to declare BODY=8BITMIME; neither README nor
    switchmail(8) promises more): the octets reach the server as they are."""
    subject = b"caf\xe9 \xff\xfe \xc3\x28 \xed\xa0\x80 ok"
    r = run_switchmail(["to@x.example"], b"Subject: " + subject +
                       b"\nX-Raw: \xc0\xaf\n\nbody\n", relay_config(relay))
    assert r.returncode == 0, r
    (m,) = relay.wait_for(1)
    assert b"\r\nSubject: " + subject + b"\r\n" in b"\r\n" + m.data
    assert b"\r\nX-Raw: \xc0\xaf\r\n" in m.data
    assert "BODY=8BITMIME" in m.mail_options


# --------------------------------------------------------------------------
# 5. Hostile servers


class HostileServer(_RawServer):
    """A raw SMTP server that says what it is told.

    greeting and replies[VERB] are bytes, or a callable(conn) that writes
    what it likes (endlessly, say).  Unlisted verbs get "250 ok"; DATA is
    taken to the final dot; QUIT closes."""

    def __init__(self, greeting: Union[bytes, Callable] = b"220 hostile.example ESMTP\r\n",
                 replies: Optional[Dict[str, Union[bytes, Callable]]] = None):
        self.greeting = greeting
        self.replies = replies or {}
        self.commands: List[str] = []
        super().__init__()

    @staticmethod
    def _say(conn: socket.socket, what) -> None:
        what(conn) if callable(what) else conn.sendall(what)

    def handle(self, conn: socket.socket) -> None:
        self._say(conn, self.greeting)
        f = conn.makefile("rb")
        while True:
            line = f.readline(4096)
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
            with self._cond:
                self.commands.append(verb)
            if verb in self.replies:
                self._say(conn, self.replies[verb])
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == "DATA":
                conn.sendall(b"354 go\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                conn.sendall(b"250 ok\r\n")
            else:
                conn.sendall(b"250 ok\r\n")


def endless(chunk: bytes) -> Callable[[socket.socket], None]:
    def write(conn: socket.socket) -> None:
        block = chunk * max(1, 65536 // len(chunk))
        while True:                      # until the client goes (OSError)
            conn.sendall(block)
    return write


@pytest.fixture
def hostile():
    started: List[HostileServer] = []

    def start(**kwargs) -> HostileServer:
        server = HostileServer(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Bounded:
    """One run of the binary, killed at `kill_after` seconds, with its peak
    resident memory (VmHWM of the running program, sampled every 20 ms:
    wait4's ru_maxrss would count the forking Python too)."""

    def __init__(self, returncode, duration, peak_kb, stdout, stderr):
        self.returncode, self.duration, self.peak_kb = returncode, duration, peak_kb
        self.stdout, self.stderr = stdout, stderr

    def __str__(self):
        return (f"exit {self.returncode} after {self.duration:.1f}s, peak "
                f"{self.peak_kb} KiB\n--- stderr (tail)\n{self.stderr[-3000:]!r}")

    __repr__ = __str__


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_bounded(tmp_path: Path, config: Path, args: Sequence[str],
                input: bytes = MSG, kill_after: float = 10) -> Bounded:
    (tmp_path / "stdin").write_bytes(input)
    peak = 0
    with open(tmp_path / "stdin", "rb") as i, open(tmp_path / "stdout", "wb") as o, \
            open(tmp_path / "stderr", "wb") as e:
        start = time.monotonic()
        proc = subprocess.Popen([str(switchmail_binary()), "-C", str(config), *args],
                                stdin=i, stdout=o, stderr=e, cwd="/",
                                env={"PATH": "/usr/bin:/bin"})
        while proc.poll() is None:
            peak = max(peak, vm_hwm_kb(proc.pid))
            if time.monotonic() - start > kill_after:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.02)
    return Bounded(proc.returncode, time.monotonic() - start, peak,
                   (tmp_path / "stdout").read_bytes(),
                   (tmp_path / "stderr").read_bytes())


def hostile_config(run_switchmail, server) -> Path:
    return run_switchmail.write_config({"native": {
        "host": "127.0.0.1", "port": server.port, "encryption": "none",
        "from": "n@example.org", "timeout": 2}})


BOUND_S = 8                 # the whole attempt, with timeout = 2 per step
RSS_MAX_KB = 64 * 1024


def assert_queued_quickly(r: Bounded, tmp_path: Path) -> None:
    assert r.returncode == 0, r                   # deferred: queued, exit 0
    assert r.duration < BOUND_S, r
    if not SANITIZED:
        assert r.peak_kb < RSS_MAX_KB, r
    assert len(list((tmp_path / "spool" / "new").iterdir())) == 1, r


def test_endless_greeting_is_bounded(hostile, run_switchmail, tmp_path):
    server = hostile(greeting=endless(b"220-hello hello hello\r\n"))
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server), ["to@x.example"])
    assert_queued_quickly(r, tmp_path)
    assert "longer than" in run_switchmail.log_path.read_text(), r


def test_endless_ehlo_reply_is_bounded(hostile, run_switchmail, tmp_path):
    server = hostile(replies={"EHLO": endless(b"250-SIZE 1000\r\n")})
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server), ["to@x.example"],
                    kill_after=BOUND_S + 2)
    assert_queued_quickly(r, tmp_path)


@pytest.mark.parametrize("where", ["greeting", "EHLO", "MAIL"])
def test_overlong_reply_line_is_bounded(hostile, run_switchmail, tmp_path, where):
    """100 KB without a newline, then more of the same."""
    flood = endless(b"2" * 65536)

    def long_line(conn):
        conn.sendall(b"250-" + b"A" * 100000)
        flood(conn)
    if where == "greeting":
        server = hostile(greeting=long_line)
    else:
        server = hostile(replies={where: long_line})
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server), ["to@x.example"])
    assert_queued_quickly(r, tmp_path)
    log = run_switchmail.log_path.read_text()
    assert "result=deferred" in log and ("longer than" in log or "over" in log), log


def test_malformed_greeting_is_queued_with_a_clear_error(hostile, run_switchmail,
                                                         tmp_path):
    server = hostile(greeting=b"hello\r\n")
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server), ["to@x.example"])
    assert_queued_quickly(r, tmp_path)
    log = run_switchmail.log_path.read_text()
    assert "result=deferred" in log and "greeting" in log and "hello" in log, log
    q = run_switchmail([], b"", None, argv0="mailq")
    assert q.returncode == 0 and "greeting: hello" in q.stdout, q
    assert "MAIL" not in server.commands


NASTY_REPLY = (b"451 4.3.0 bad\x1b[2J\x1b]0;owned\x07 \x08\x08 \x7f tail\x00"
               b"after\r\n")
RAW_CONTROLS = [b"\x1b", b"\x00", b"\x07", b"\x08", b"\x7f"]


def test_control_characters_in_replies_are_escaped(hostile, run_switchmail,
                                                   tmp_path):
    server = hostile(replies={"MAIL": NASTY_REPLY})
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server),
                    ["-v", "to@x.example"])
    assert_queued_quickly(r, tmp_path)
    log = run_switchmail.log_path.read_bytes()
    assert b"451 4.3.0 bad\\x1b[2J" in log, log    # escaped, still legible
    q = run_switchmail([], b"", None, argv0="mailq")
    assert q.returncode == 0 and b"451 4.3.0 bad" in q.stdout_bytes, q
    for where, data in (("log", log), ("mailq", q.stdout_bytes),
                        ("-v stderr", r.stderr)):
        for c in RAW_CONTROLS:
            assert c not in data, f"raw {c!r} in {where}: {data!r}"
    assert b"\x1b" not in (tmp_path / "spool" / "last-native").read_bytes()


def test_c1_controls_in_replies_are_escaped(hostile, run_switchmail, tmp_path):
    server = hostile(replies={"MAIL": b"451 4.3.0 bad \x9b2J \xc2\x9b1m x\r\n"})
    r = run_bounded(tmp_path, hostile_config(run_switchmail, server),
                    ["-v", "to@x.example"])
    assert_queued_quickly(r, tmp_path)
    q = run_switchmail([], b"", None, argv0="mailq")
    assert b"451 4.3.0 bad" in q.stdout_bytes, q
    for where, data in (("log", run_switchmail.log_path.read_bytes()),
                        ("mailq", q.stdout_bytes), ("-v stderr", r.stderr)):
        assert b"\x9b" not in data, f"raw C1 CSI in {where}: {data!r}"
