"""pytest fixtures and helpers for switchmail's end-to-end tests.

Run with Debian's interpreter (it has aiosmtpd, pytest, cryptography):
    /usr/bin/python3 -m pytest -q tests/e2e
The binary is $SWITCHMAIL_BIN, else <repo>/build/switchmail.

Fixtures
  pki              session: certs.PKI (CA, server, wrong_name, expired, ...)
  smtp_server      factory: smtp_server(**SMTPServer kwargs) -> started
                   SMTPServer; TLS modes get cert=pki.server by default
  raw_server       factory: raw_server("silent" | "close" | "plain", **kw)
  run_switchmail   SwitchmailRunner for this test's tmp_path:
                   run_switchmail(args, input=b"", config=...) -> Result
  closed_port      a 127.0.0.1 port with nothing listening

Helpers (import from conftest, or use through the fixtures)
  make_config(tmp_path, connector=None, native=None, active=None, extra="",
              settings=None) -> libconfig text (creates tmp_path/spool)
  route_for(server, **overrides) -> dict for connector= / native=
  render_value(v), Raw("literal")   the libconfig writer

When a test fails, the transcripts of its servers and the stderr and log of
its switchmail runs are printed under "Captured stdout teardown".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import certs  # noqa: E402
import smtpd  # noqa: E402  (ours, not the deprecated standard module)
from smtpd import (CloseServer, PlainGreetingServer, SilentServer,  # noqa: E402
                   SMTPServer)

if Path(smtpd.__file__).resolve().parent != HERE:
    raise ImportError(f"imported {smtpd.__file__} instead of {HERE}/smtpd.py")

DEFAULT_BINARY = REPO / "build" / "switchmail"
BASE_ENV = {"PATH": "/usr/bin:/bin"}
# Passed through to the binary when set, for `make asan`.
SANITIZER_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                 "MSAN_OPTIONS")


# --------------------------------------------------------------------------
# libconfig writer


class Raw(str):
    """A value written into the config as is, e.g. Raw("starttls") for an
    unquoted (invalid) word, or Raw('"a" "b"') for libconfig's string
    concatenation."""


def _quote(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)         # UTF-8 passes through
    return '"' + "".join(out) + '"'


def render_value(value: Any, indent: str = "") -> str:
    """One libconfig value: str/Path quoted, bool true/false, int bare (L
    suffix past 32 bits), float, list -> array [ ], tuple -> list ( ),
    dict -> group { } (one setting per line), Raw as is."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}L" if not -2**31 <= value < 2**31 else str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, (str, os.PathLike)):
        return _quote(os.fspath(value))
    if isinstance(value, list):
        return "[ " + ", ".join(render_value(v, indent) for v in value) + " ]"
    if isinstance(value, tuple):
        return "( " + ", ".join(render_value(v, indent) for v in value) + " )"
    if isinstance(value, Mapping):
        inner = indent + "  "
        lines = [f"{inner}{render_setting(k, v, inner)}"
                 for k, v in value.items() if v is not None]
        return "{\n" + "\n".join(lines) + f"\n{indent}}}"
    raise TypeError(f"no libconfig form for {value!r}")


def render_setting(name: str, value: Any, indent: str = "") -> str:
    return f"{name} = {render_value(value, indent)};"


def make_config(tmp_path, connector: Optional[Mapping] = None,
                native: Optional[Mapping] = None, active: Optional[bool] = None,
                extra: str = "", settings: Optional[Mapping] = None) -> str:
    """libconfig text for switchmail.

    connector/native: dicts of settings (any key; None values are left
    out), e.g. from route_for(server).  active sets connector.active
    (default true when a connector is given; it is written first).
    settings: top-level settings that replace or add to the defaults
        default_domain = "example.org";
        queue = { dir = "<tmp_path>/spool"; };
        log = { syslog = false; file = "<tmp_path>/switchmail.log"; };
    (a None value removes a default).  extra: raw text appended.
    Creates <tmp_path>/spool (mode 0700)."""
    tmp = Path(tmp_path)
    spool = tmp / "spool"
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    parts = []
    if connector is not None:
        group = dict(connector)
        if active is not None:
            group["active"] = active
        group = {"active": group.pop("active", True), **group}
        parts.append(render_setting("connector", group))
    if native is not None:
        parts.append(render_setting("native", dict(native)))
    top: Dict[str, Any] = {
        "default_domain": "example.org",
        "queue": {"dir": str(spool)},
        "log": {"syslog": False, "file": str(tmp / "switchmail.log")},
    }
    top.update(settings or {})
    parts += [render_setting(k, v) for k, v in top.items() if v is not None]
    text = "\n".join(parts) + "\n"
    if extra:
        text += extra if extra.endswith("\n") else extra + "\n"
    return text


ENCRYPTION = {"plain": "none", "starttls": "tls", "implicit": "ssl"}


def route_for(server: SMTPServer, **overrides) -> Dict[str, Any]:
    """connector/native settings that reach `server`: host, port,
    encryption by mode, username/password and from by its auth (else
    from = "no-reply@platform.example"), tls_ca_file = the CA of its
    certificate, timeout = 5.  overrides win; a None override removes."""
    route: Dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "encryption": ENCRYPTION[server.mode],
    }
    if server.auth is not None:
        route["username"], route["password"] = server.auth
        route["from"] = server.auth[0]
    else:
        route["from"] = "no-reply@platform.example"
    if server.mode != "plain" and getattr(server.cert, "ca", None):
        route["tls_ca_file"] = server.cert.ca
    route["timeout"] = 5
    route.update(overrides)
    return {k: v for k, v in route.items() if v is not None}


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out and nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Running the binary


def switchmail_binary() -> Path:
    return Path(os.environ.get("SWITCHMAIL_BIN") or DEFAULT_BINARY)


class SwitchmailTimeout(AssertionError):
    """The binary outran its timeout (it was killed)."""


@dataclass
class Result:
    args: List[str]              # full argv, binary first
    returncode: int
    stdout: str                  # decoded UTF-8 (errors replaced)
    stderr: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    config_path: Optional[Path]
    log_path: Path
    duration: float              # seconds

    def log(self) -> str:
        """The log file as text ('' when there is none)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\n-> exit {self.returncode} in "
                f"{self.duration:.2f}s\n--- stdout\n{self.stdout}"
                f"--- stderr\n{self.stderr}--- log {self.log_path}\n{self.log()}")


class SwitchmailRunner:
    """Runs the binary for one test, in tmp_path.

        r = run_switchmail(["-t", "-i"], input=msg, config={...})
        assert r.returncode == 0, r

    config: dict -> make_config(tmp_path, **dict); str -> raw libconfig
    text; Path -> that file as is; None -> the config written last.  The
    file is tmp_path/switchmail.conf (mode 0600), the queue
    tmp_path/spool, the log tmp_path/switchmail.log."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = Path(tmp_path)
        self.config_path: Optional[Path] = None
        self.log_path = self.tmp_path / "switchmail.log"
        self.spool = self.tmp_path / "spool"
        self.history: List[Result] = []
        self._procs: List[subprocess.Popen] = []

    def write_config(self, config: Union[None, str, Mapping, os.PathLike]
                     ) -> Path:
        if config is None:
            if self.config_path is None:
                raise ValueError("no config given and none written before")
            return self.config_path
        if isinstance(config, os.PathLike):
            self.config_path = Path(config)
            return self.config_path
        if isinstance(config, Mapping):
            text = make_config(self.tmp_path, **config)
        else:
            text = str(config)
            self.spool.mkdir(mode=0o700, exist_ok=True)
        path = self.tmp_path / "switchmail.conf"
        path.write_text(text)
        os.chmod(path, 0o600)
        self.config_path = path
        return path

    def binary(self) -> Path:
        """The binary; skips the test when the default one is not built,
        fails it when $SWITCHMAIL_BIN names a missing file."""
        path = switchmail_binary()
        if not os.access(path, os.X_OK):
            if os.environ.get("SWITCHMAIL_BIN"):
                pytest.fail(f"SWITCHMAIL_BIN={path} is not an executable file")
            pytest.skip(f"{path} not built (run make)")
        return path

    def _argv_env(self, args, config, env, use_config_flag, argv0):
        binary = self.binary()
        argv = [str(binary)]
        cfg = None
        if use_config_flag:
            cfg = self.write_config(config)
            argv += ["-C", str(cfg)]
        elif config is not None:
            cfg = self.write_config(config)
        argv += [str(a) for a in args]
        full_env = dict(BASE_ENV)
        full_env.update({k: os.environ[k] for k in SANITIZER_ENV
                         if k in os.environ})
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        if argv0 is not None:
            # basename(argv[0]) picks the personality (mailq, newaliases).
            exec_args = [argv0] + argv[1:]
        else:
            exec_args = argv
        return binary, argv, exec_args, full_env, cfg

    def __call__(self, args: Sequence[str] = (), input: Union[bytes, str] = b"",
                 config: Union[None, str, Mapping, os.PathLike] = None, *,
                 timeout: float = 60, env: Optional[Mapping[str, Optional[str]]] = None,
                 use_config_flag: bool = True, argv0: Optional[str] = None
                 ) -> Result:
        """Run [binary, -C, cfg, *args] with `input` on stdin, env
        {"PATH": "/usr/bin:/bin"} (+ sanitizer options, + env; None
        removes), cwd "/".  use_config_flag=False leaves out -C (the config
        is still written, e.g. for env={"SWITCHMAIL_CONFIG": ...}); argv0
        replaces argv[0] ("mailq").  Raises SwitchmailTimeout after
        `timeout` seconds (the process is killed)."""
        binary, argv, exec_args, full_env, cfg = self._argv_env(
            args, config, env, use_config_flag, argv0)
        if isinstance(input, str):
            input = input.encode()
        start = time.monotonic()
        proc = subprocess.Popen(exec_args, executable=str(binary),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/", env=full_env)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            result = self._result(argv, -9, out, err, cfg, start)
            self.history.append(result)
            raise SwitchmailTimeout(f"switchmail still running after {timeout}s"
                                    f" (killed)\n{result}") from None
        result = self._result(argv, proc.returncode, out, err, cfg, start)
        self.history.append(result)
        return result

    def _result(self, argv, code, out, err, cfg, start) -> Result:
        return Result(args=argv, returncode=code,
                      stdout=out.decode("utf-8", "replace"),
                      stderr=err.decode("utf-8", "replace"),
                      stdout_bytes=out, stderr_bytes=err, config_path=cfg,
                      log_path=self.log_path,
                      duration=time.monotonic() - start)

    def popen(self, args: Sequence[str] = (),
              config: Union[None, str, Mapping, os.PathLike] = None, *,
              env: Optional[Mapping[str, Optional[str]]] = None,
              use_config_flag: bool = True, argv0: Optional[str] = None
              ) -> subprocess.Popen:
        """Start the binary with pipes on stdin/stdout/stderr (e.g. for an
        -bs dialogue); same argv and environment as a call.  Killed at the
        end of the test if still running."""
        binary, argv, exec_args, full_env, _ = self._argv_env(
            args, config, env, use_config_flag, argv0)
        proc = subprocess.Popen(exec_args, executable=str(binary),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/", env=full_env)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self._procs.clear()


# --------------------------------------------------------------------------
# Fixtures


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell, at
    # teardown, whether the test failed.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> certs.PKI:
    """The throwaway PKI, made once per test session."""
    return certs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def smtp_server(pki, request):
    """Factory: smtp_server(**kwargs) starts an SMTPServer (TLS modes get
    cert=pki.server unless given).  All are stopped at teardown."""
    started: List[SMTPServer] = []

    def start(**kwargs) -> SMTPServer:
        if kwargs.get("mode", "plain") != "plain":
            kwargs.setdefault("cert", pki.server)
        server = SMTPServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    failed = _failed(request)
    for server in started:
        server.stop()
        if failed:
            print(server.dump())


@pytest.fixture
def raw_server():
    """Factory: raw_server("silent" | "close" | "plain", **kwargs) starts a
    SilentServer, CloseServer or PlainGreetingServer; all stopped at
    teardown."""
    kinds = {"silent": SilentServer, "close": CloseServer,
             "plain": PlainGreetingServer}
    started = []

    def start(kind: str, **kwargs):
        server = kinds[kind](**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def run_switchmail(tmp_path, request):
    """SwitchmailRunner for this test (see its docstring)."""
    runner = SwitchmailRunner(tmp_path)
    yield runner
    runner.close()
    if _failed(request):
        for result in runner.history:
            print(result)


@pytest.fixture
def closed_port() -> int:
    return free_port()


def queued(r):
    """A temporary failure: exit 0, nothing on stderr, the message waits in
    new/ and the log says why.  Returns the log."""
    assert r.returncode == 0, r
    assert r.stderr == "" or "-v" in r.args, r
    spool = r.config_path.parent / "spool" / "new"
    assert spool.is_dir() and any(spool.iterdir()), r
    return r.log()
