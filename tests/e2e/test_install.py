"""`make install` and `make uninstall` into a DESTDIR: the tree, its modes,
owners and links, the installed paths compiled in and written into the
installed text files, and what uninstall keeps.

Run with Debian's interpreter: /usr/bin/python3 -m pytest -q tests/e2e

Each test installs into its own tmp_path DESTDIR with its own STAGE (the
Makefile's directory of path-rewritten copies), so runs never share files.
The PREFIX=/usr test builds into its own BUILD directory: its compiled-in
paths differ, and the shared build/ must not be rebuilt under other tests.

As root, install creates the switchmail group on this machine when missing
(groupadd --system) and sets owners; the tests check them.  As another
user, or with OWNERS=no, owners are left alone: the owner checks are skipped
(or, with OWNERS=no as root, check that nothing was chowned) while modes,
links and contents are checked all the same.  As root, one test also runs
the install and uninstall as nobody (setpriv), the unprivileged path.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
GROUP = "switchmail"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
JOBS = f"-j{os.cpu_count() or 2}"
needs_root = pytest.mark.skipif(not IS_ROOT, reason="owners need root")

LOCAL = {  # PREFIX=/usr/local, every other path at its default
    "sbin": "usr/local/sbin",
    "data": "usr/local/share/switchmail",
    "man": "usr/local/share/man",
    "etc": "etc",
    "spool": "var/spool/switchmail",
    "units": "usr/local/lib/systemd/system",
}


def make(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["make", "-C", str(REPO), "--no-print-directory",
                          *args], capture_output=True, text=True,
                         timeout=600, env=ENV)
    if check:
        assert out.returncode == 0, \
            f"make {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module", autouse=True)
def built():
    """The programs, built once (as `make` would)."""
    make(JOBS, "all")


def install(dest: Path, tmp_path: Path, *args: str, check: bool = True,
            target: str = "install") -> subprocess.CompletedProcess:
    return make(target, f"DESTDIR={dest}", f"STAGE={tmp_path / 'stage'}",
                *args, check=check)


def expected_files(p: Dict[str, str], usr_lib: bool = False
                   ) -> Dict[str, Optional[str]]:
    """relative path -> link target (None for a regular file)."""
    files: Dict[str, Optional[str]] = {
        f"{p['sbin']}/switchmail": None,
        f"{p['sbin']}/switchmailctl": None,
        f"{p['sbin']}/sendmail": "switchmail",
        f"{p['sbin']}/mailq": "switchmail",
        f"{p['sbin']}/newaliases": "switchmail",
        f"{p['etc']}/switchmail.conf": None,
        f"{p['etc']}/logrotate.d/switchmail": None,
        f"{p['data']}/providers.conf": None,
        f"{p['man']}/man8/switchmail.8": None,
        f"{p['man']}/man8/switchmailctl.8": None,
        f"{p['man']}/man5/switchmail.conf.5": None,
        f"{p['units']}/switchmail-queue.service": None,
        f"{p['units']}/switchmail-queue.timer": None,
    }
    if usr_lib:
        files["usr/lib/sendmail"] = "../sbin/switchmail"
    return files


def non_dirs(dest: Path) -> Dict[str, os.stat_result]:
    """Every entry under dest that is not a directory, by relative path."""
    out = {}
    for root, dirs, names in os.walk(dest):
        for n in names + [d for d in dirs if os.path.islink(Path(root, d))]:
            path = Path(root, n)
            out[str(path.relative_to(dest))] = path.lstat()
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def group_of(path: Path) -> str:
    return grp.getgrgid(path.lstat().st_gid).gr_name


def check_owner(path: Path, group: str, owners: bool = True,
                ids: Optional[Tuple[int, int]] = None) -> None:
    """root:group when owners were set (root, OWNERS not no); else the
    installing user's own ids (ids, by default this process's)."""
    st = path.lstat()
    if owners and IS_ROOT and ids is None:
        assert (st.st_uid, group_of(path)) == (0, group), path
    else:
        assert (st.st_uid, st.st_gid) == \
            (ids or (os.geteuid(), os.getegid())), path


def check_tree(dest: Path, p: Dict[str, str], usr_lib: bool = False,
               owners: bool = True,
               ids: Optional[Tuple[int, int]] = None) -> None:
    """Exactly the expected files, with their modes, owners and links."""
    files = expected_files(p, usr_lib)
    got = non_dirs(dest)
    assert set(got) == set(files), (
        f"missing {sorted(set(files) - set(got))}, "
        f"unexpected {sorted(set(got) - set(files))}")
    for rel, target in files.items():
        path = dest / rel
        if target is not None:
            assert path.is_symlink() and os.readlink(path) == target, rel
            assert path.resolve() == (dest / p["sbin"] / "switchmail"), rel
            continue
        assert path.is_file() and not path.is_symlink(), rel
    sbin = dest / p["sbin"]
    assert mode(sbin / "switchmail") == 0o2755
    check_owner(sbin / "switchmail", GROUP, owners, ids)
    assert mode(sbin / "switchmailctl") == 0o755
    check_owner(sbin / "switchmailctl", "root", owners, ids)
    conf = dest / p["etc"] / "switchmail.conf"
    assert mode(conf) == 0o640
    check_owner(conf, GROUP, owners, ids)
    for rel in (f"{p['etc']}/logrotate.d/switchmail",
                f"{p['data']}/providers.conf",
                f"{p['man']}/man8/switchmail.8",
                f"{p['man']}/man8/switchmailctl.8",
                f"{p['man']}/man5/switchmail.conf.5",
                f"{p['units']}/switchmail-queue.service",
                f"{p['units']}/switchmail-queue.timer"):
        assert mode(dest / rel) == 0o644, rel
        check_owner(dest / rel, "root", owners, ids)
    spool = dest / p["spool"]
    for d in (spool, spool / "tmp", spool / "new", spool / "failed"):
        assert d.is_dir() and not d.is_symlink(), d
        assert mode(d) == 0o2770, d
        check_owner(d, GROUP, owners, ids)


def unit_line(path: Path, key: str) -> str:
    lines = [l for l in path.read_text().splitlines()
             if l.startswith(key + "=")]
    assert len(lines) == 1, f"{path.name}: {lines}"
    return lines[0].split("=", 1)[1]


def render(page: Path) -> str:
    out = subprocess.run(["man", "--warnings=w", "-l", str(page)],
                         capture_output=True, text=True, timeout=30,
                         env={**ENV, "MANWIDTH": "80", "MANPAGER": "cat"})
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "NAME" in out.stdout.splitlines()
    return out.stdout


def run_installed(binary: Path, *args: str, input_: bytes = b""
                  ) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], input=input_,
                          capture_output=True, timeout=30, env=ENV)


def no_config_text(tmp_path: Path) -> Path:
    """A minimal configuration of our own, spool under tmp_path."""
    spool = tmp_path / "spool"
    for d in ("", "tmp", "new", "failed"):
        (spool / d).mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = tmp_path / "test.conf"
    conf.write_text('native = { host = "127.0.0.1"; port = 25; '
                    'encryption = "none"; from = "n@example.org"; };\n'
                    f'queue = {{ dir = "{spool}"; }};\n'
                    'log = { syslog = false; };\n')
    conf.chmod(0o600)
    return conf


# --------------------------------------------------------------------------


def test_install_usr_local(tmp_path):
    dest = tmp_path / "dest"
    out = install(dest, tmp_path, "PREFIX=/usr/local")
    check_tree(dest, LOCAL)
    if IS_ROOT:
        assert grp.getgrnam(GROUP).gr_gid == (dest / LOCAL["etc"] /
                                              "switchmail.conf").stat().st_gid
    else:
        assert "owners and groups left as they are" in out.stdout
    # Contents: with the default paths, the installed copies are the sources.
    etc = dest / "etc"
    assert (etc / "switchmail.conf").read_bytes() == \
        (REPO / "etc/switchmail.conf").read_bytes()
    assert (etc / "logrotate.d/switchmail").read_bytes() == \
        (REPO / "etc/switchmail.logrotate").read_bytes()
    assert (dest / LOCAL["data"] / "providers.conf").read_bytes() == \
        (REPO / "etc/providers.conf").read_bytes()
    for page in ("man8/switchmail.8", "man8/switchmailctl.8",
                 "man5/switchmail.conf.5"):
        installed = dest / LOCAL["man"] / page
        assert installed.read_bytes() == \
            (REPO / "src" / installed.name).read_bytes()
        render(installed)
    units = dest / LOCAL["units"]
    service = units / "switchmail-queue.service"
    assert unit_line(service, "ExecStart") == \
        "/usr/local/sbin/switchmailctl queue run"
    assert unit_line(service, "ReadWritePaths") == "/var/spool/switchmail"
    assert (units / "switchmail-queue.timer").read_bytes() == \
        (REPO / "etc/systemd/switchmail-queue.timer").read_bytes()


def test_installed_programs_run(tmp_path):
    dest = tmp_path / "dest"
    install(dest, tmp_path)
    sbin = dest / LOCAL["sbin"]
    out = run_installed(sbin / "switchmail", "--version")
    assert out.returncode == 0 and out.stdout.startswith(b"switchmail "), out
    out = run_installed(sbin / "sendmail", "--help")
    assert out.returncode == 0 and b"usage: sendmail" in out.stdout, out
    out = run_installed(sbin / "switchmailctl", "--help")
    assert out.returncode == 0 and b"queue" in out.stdout, out
    # The mailq link lists the queue by its name alone.
    conf = no_config_text(tmp_path)
    out = run_installed(sbin / "mailq", "-C", str(conf))
    assert out.returncode == 0, out
    assert b"0 messages waiting" in out.stdout, out


def test_install_twice_keeps_a_changed_config(tmp_path):
    dest = tmp_path / "dest"
    install(dest, tmp_path)
    conf = dest / "etc/switchmail.conf"
    changed = conf.read_text() + "# the admin's own line\n"
    conf.write_text(changed)
    out = install(dest, tmp_path)
    assert f"kept {conf}" in out.stdout
    assert conf.read_text() == changed
    check_tree(dest, LOCAL)


def test_uninstall_removes_everything(tmp_path):
    dest = tmp_path / "dest"
    install(dest, tmp_path)
    out = install(dest, tmp_path, target="uninstall")
    assert non_dirs(dest) == {}, out.stdout
    assert not (dest / LOCAL["spool"]).exists()
    assert not (dest / LOCAL["data"]).exists()
    assert "kept" not in out.stdout.replace(f"kept the group {GROUP}", "")


def test_uninstall_keeps_a_changed_config_and_queued_mail(tmp_path):
    dest = tmp_path / "dest"
    install(dest, tmp_path)
    conf = dest / "etc/switchmail.conf"
    conf.write_text(conf.read_text().replace("syslog = true", "syslog = false"))
    queued = dest / LOCAL["spool"] / "new" / "0123456789ABCDEF0123"
    queued.write_text("a queued message\n")
    out = install(dest, tmp_path, target="uninstall")
    assert set(non_dirs(dest)) == {"etc/switchmail.conf",
                                   f"{LOCAL['spool']}/new/{queued.name}"}
    assert f"kept {conf} (changed since installed)" in out.stdout
    assert f"kept {dest / LOCAL['spool']}: it holds 1 waiting, 0 failed " \
        "and 0 incoming" in out.stdout
    assert queued.read_text() == "a queued message\n"


def test_uninstall_removes_the_route_state_but_not_strangers(tmp_path):
    """status' last-<route> files are not mail: they go with the spool;
    a file switchmail did not make keeps it."""
    dest = tmp_path / "dest"
    install(dest, tmp_path)
    spool = dest / LOCAL["spool"]
    (spool / "last-connector").write_text("time 1\nresult delivered\n")
    (spool / "last-native").write_text("time 1\nresult deferred\n")
    out = install(dest, tmp_path, target="uninstall")
    assert not spool.exists(), out.stdout
    install(dest, tmp_path)
    (spool / "README.admin").write_text("mine\n")
    out = install(dest, tmp_path, target="uninstall")
    assert f"kept {spool} (it holds files switchmail did not make)" in \
        out.stdout
    assert set(non_dirs(dest)) == {f"{LOCAL['spool']}/README.admin"}


def test_another_mta_is_not_replaced_unless_asked(tmp_path):
    dest = tmp_path / "dest"
    sendmail = dest / LOCAL["sbin"] / "sendmail"
    sendmail.parent.mkdir(parents=True)
    sendmail.write_text("#!/bin/sh\n# another MTA\n")
    out = install(dest, tmp_path, check=False)
    assert out.returncode != 0
    assert "is not switchmail's" in out.stderr and "REPLACE_MTA=yes" in \
        out.stderr, out.stderr
    assert sendmail.read_text() == "#!/bin/sh\n# another MTA\n"
    assert not (dest / LOCAL["sbin"] / "switchmail").exists()
    install(dest, tmp_path, "REPLACE_MTA=yes")
    check_tree(dest, LOCAL)
    # uninstall leaves a link that another package made since.
    mailq = dest / LOCAL["sbin"] / "mailq"
    mailq.unlink()
    mailq.symlink_to("/usr/sbin/exim4")
    out = install(dest, tmp_path, target="uninstall")
    assert f"kept {mailq} (not switchmail's)" in out.stdout
    assert set(non_dirs(dest)) == {f"{LOCAL['sbin']}/mailq"}


@needs_root
def test_owners_no_leaves_owners_alone(tmp_path):
    """What a packager (fakeroot, postinst) or a non-root user gets."""
    dest = tmp_path / "dest"
    out = install(dest, tmp_path, "OWNERS=no")
    assert "owners and groups left as they are" in out.stdout
    check_tree(dest, LOCAL, owners=False)


@needs_root
def test_install_as_an_unprivileged_user():
    """A user without root installs into a DESTDIR: no groupadd, no chown
    (and it says so), the modes all the same; uninstall as that user.
    Runs make as nobody on a build brought up to date just before by root
    (nobody cannot write build/; `make -q` cannot tell, the path stamp
    being remade at each run)."""
    make(JOBS, "all")
    user = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(prefix="switchmail-install-"))
    try:
        top.chmod(0o777)
        dest = top / "dest"
        as_nobody = ["setpriv", f"--reuid={user.pw_uid}",
                     f"--regid={user.pw_gid}", "--clear-groups",
                     "make", "-C", str(REPO), "--no-print-directory",
                     f"DESTDIR={dest}", f"STAGE={top / 'stage'}"]
        out = subprocess.run(as_nobody + ["install"], capture_output=True,
                             text=True, timeout=120, env=ENV)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "owners and groups left as they are" in out.stdout
        assert "creating the system group" not in out.stdout
        check_tree(dest, LOCAL, owners=False,
                   ids=(user.pw_uid, user.pw_gid))
        out = subprocess.run(as_nobody + ["uninstall"], capture_output=True,
                             text=True, timeout=120, env=ENV)
        assert out.returncode == 0, out.stdout + out.stderr
        assert non_dirs(dest) == {}, out.stdout
    finally:
        shutil.rmtree(top)


def test_prefix_usr_with_other_paths(tmp_path):
    """PREFIX=/usr: sbin, share, man and /lib/systemd units under /usr,
    /usr/lib/sendmail; SYSCONFDIR and SPOOLDIR moved too.  The paths are
    compiled into the programs and written into the installed copies."""
    etc, spool = "/etc/sm-test", "/var/spool/sm-test"
    if Path(etc).exists():
        pytest.skip(f"{etc} exists on this machine")
    dest = tmp_path / "dest"
    args = ("PREFIX=/usr", f"SYSCONFDIR={etc}", f"SPOOLDIR={spool}",
            f"BUILD={tmp_path / 'build'}", JOBS)
    install(dest, tmp_path, *args)
    p = {"sbin": "usr/sbin", "data": "usr/share/switchmail",
         "man": "usr/share/man", "etc": etc.lstrip("/"),
         "spool": spool.lstrip("/"), "units": "lib/systemd/system"}
    check_tree(dest, p, usr_lib=True)
    # Compiled in.
    binary = (dest / p["sbin"] / "switchmail").read_bytes()
    for path in (b"/usr/share/switchmail/providers.conf",
                 etc.encode() + b"/switchmail.conf", spool.encode()):
        assert path in binary, path
    out = run_installed(dest / p["sbin"] / "switchmail", "-bp")
    assert out.returncode == 78, out
    assert f"{etc}/switchmail.conf".encode() in out.stderr, out.stderr
    # Written into the installed copies.
    conf = (dest / p["etc"] / "switchmail.conf").read_text()
    assert f'dir = "{spool}";' in conf and f"# {etc}/switchmail.conf" in conf
    service = dest / p["units"] / "switchmail-queue.service"
    assert unit_line(service, "ExecStart") == "/usr/sbin/switchmailctl queue run"
    assert unit_line(service, "ReadWritePaths") == spool
    page = (dest / p["man"] / "man8/switchmail.8").read_text()
    assert "/usr/share/switchmail/providers.conf" in page
    assert f"{etc}/switchmail.conf" in page and spool in page
    assert "/usr/local" not in page
    for rel in ("man8/switchmail.8", "man8/switchmailctl.8",
                "man5/switchmail.conf.5"):
        render(dest / p["man"] / rel)
    out = install(dest, tmp_path, *args, target="uninstall")
    assert non_dirs(dest) == {}, out.stdout
