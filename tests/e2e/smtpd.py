"""A recording, fault-injecting SMTP server for switchmail's end-to-end tests.

(The name shadows the standard library's deprecated `smtpd` module for code
that runs with tests/e2e on sys.path; nothing here or in aiosmtpd uses it.)

SMTPServer wraps aiosmtpd 1.4.3 (Debian's python3-aiosmtpd) in an asyncio
loop running in its own thread, listening on 127.0.0.1 on a port the kernel
chose.  It plays a mail provider (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN)
or a plain relay, and it records everything a test asserts on:

    with SMTPServer(mode="starttls", cert=pki.server,
                    auth=("u@example.org", "secret")) as server:
        ... run the client against server.host, server.port ...
        msg, = server.wait_for(1)
        assert msg.auth_user == "u@example.org" and msg.sni == "localhost"
        assert msg.data == b"Subject: hi\\r\\n\\r\\nbody\\r\\n"

What is recorded
  server.messages   MessageRecord for every message the server accepted
  server.rejected   MessageRecord for every message refused (or dropped)
                    after its data had been received
  server.sessions   SessionRecord for every TCP connection, in accept order:
                    command verbs, a transcript with AUTH payloads masked,
                    EHLO names, TLS state, SNI, AUTH attempts, errors
  server.sni_seen   the server name of every TLS ClientHello, even from
                    handshakes that then failed (None: no SNI sent)
  server.errors     exceptions the event loop reported (should stay empty)
Each accessor returns a snapshot list under a lock.  A SessionRecord keeps
growing while its connection is open: read it after wait_closed().
Waiting: wait_for(n) (accepted messages), wait_message(predicate),
wait_closed(n) (sessions over); each raises TimeoutError with a dump().

Fault injection (all keyword arguments; also plain attributes that a test may
change between two deliveries)
  greeting="421 4.3.2 busy"        a banner other than 220: 421 closes at
                                   once, other codes answer 503 until QUIT;
                                   a "220 ..." text just replaces the banner
  auth_reply="535 5.7.139 ..."     every AUTH fails with this reply line
  mail_reply="451 4.3.0 later"     reply to MAIL FROM; or {addr: reply}; or a
                                   callable(addr) -> reply or None
  rcpt_replies={"bad@x": "550 5.1.1 no such user"}   same forms, per RCPT
  data_reply="552 5.3.4 too big"   reply after the final dot; or a
                                   callable(MessageRecord) -> reply or None
                                   (fail_first(n, reply) builds one)
  command_replies={"STARTTLS": "454 4.7.0 TLS not available"}
                                   answer a verb with a fixed line instead of
                                   running it
  drop_at / stall_at = "EHLO" | "STARTTLS" | "AUTH" | "MAIL" | "RCPT" |
                       "DATA" | "DATA_END" | any verb
                                   close the TCP connection without a reply,
                                   or never answer (until idle_timeout)

Small raw servers for connection-level faults: SilentServer (accepts, never
answers), CloseServer (accepts and closes), PlainGreetingServer (a plaintext
ESMTP server without STARTTLS).
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.parser
import email.policy
import functools
import hashlib
import logging
import selectors
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from aiosmtpd.smtp import (SMTP, AuthResult, Envelope, TLSSetupException,
                           syntax)

__all__ = [
    "SMTPServer", "MessageRecord", "SessionRecord", "AuthAttempt",
    "SilentServer", "CloseServer", "PlainGreetingServer", "fail_first",
    "DEFAULT_SIZE_LIMIT",
]

# Advertised as SIZE and enforced; big enough for a 100 MB test message.
DEFAULT_SIZE_LIMIT = 256 * 1024 * 1024
LOCALHOST = "127.0.0.1"
MASK = "<auth data>"           # what the transcript shows for AUTH payloads
BUILTIN_AUTH = ("LOGIN", "PLAIN")  # the mechanisms aiosmtpd 1.4.3 implements

ReplySpec = Union[None, str, Dict[str, str], Callable[[str], Optional[str]]]


# --------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str         # "PLAIN" or "LOGIN"
    login: str             # the user name the client sent
    success: bool


@dataclass
class SessionRecord:
    """One TCP connection, filled in by the server thread as it goes."""

    id: int                                    # 1, 2, ... in accept order
    peer: Optional[Tuple[str, int]] = None
    commands: List[str] = field(default_factory=list)   # verbs, upper-case
    transcript: List[Tuple[str, str]] = field(default_factory=list)
    # ("C", line) from the client, ("S", line) from the server, without
    # CRLF; AUTH payloads and challenge answers replaced by MASK; DATA
    # content not included.
    ehlo: List[str] = field(default_factory=list)       # EHLO/HELO names
    tls: bool = False
    tls_mode: Optional[str] = None             # "starttls" or "implicit"
    tls_version: Optional[str] = None          # "TLSv1.3", ...
    tls_cipher: Optional[str] = None
    tls_resumed: bool = False                  # TLS session resumed
    sni: Optional[str] = None                  # server name the client sent
    auth_user: Optional[str] = None            # after a successful AUTH
    auth_attempts: List[AuthAttempt] = field(default_factory=list)
    messages: int = 0                          # messages accepted
    bare_lf: bool = False                      # a command ended in LF alone
    errors: List[str] = field(default_factory=list)  # TLS failures etc.
    closed: bool = False

    def commands_after(self, verb: str) -> List[str]:
        """The verbs the client sent after the last `verb` (e.g. "AUTH")."""
        verb = verb.upper()
        idx = max((i for i, v in enumerate(self.commands) if v == verb),
                  default=None)
        return [] if idx is None else self.commands[idx + 1:]

    def replies(self) -> List[str]:
        return [line for who, line in self.transcript if who == "S"]

    def dump(self) -> str:
        head = (f"session {self.id} peer={self.peer} tls={self.tls_mode} "
                f"{self.tls_version or ''} sni={self.sni!r} "
                f"auth={self.auth_user!r} closed={self.closed}")
        lines = [head] + [f"  {who}: {text}" for who, text in self.transcript]
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)


@dataclass(frozen=True)
class MessageRecord:
    """One message transaction whose DATA the server received."""

    seq: int                   # 1, 2, ... over the server's life
    session_id: int            # SessionRecord.id: counts messages/connection
    mail_from: str             # "<>" for the null reverse-path (aiosmtpd)
    rcpt_tos: List[str]        # accepted recipients, in order
    mail_options: List[str]    # e.g. ["BODY=8BITMIME", "SIZE=123"]
    # (aiosmtpd upper-cases the whole parameter string; the transcript has
    # the line as sent)
    rcpt_options: List[List[str]]   # per accepted recipient, same order
    data: Optional[bytes]      # exact DATA after dot-unstuffing, ending in
    # CRLF (the final ".\r\n" removed); None when store_data=False
    size: int                  # len of that data
    sha256: str                # hex digest of that data
    smtputf8: bool             # MAIL FROM carried SMTPUTF8
    helo: Optional[str]        # EHLO/HELO name of the session
    auth_user: Optional[str]
    tls: bool
    tls_version: Optional[str]
    sni: Optional[str]
    reply: Optional[str] = None    # the line sent after the final dot;
    # None when dropped/stalled

    def email(self) -> email.message.EmailMessage:
        """The data parsed with email.policy.default (needs store_data)."""
        if self.data is None:
            raise ValueError("server ran with store_data=False")
        return email.message_from_bytes(self.data, policy=email.policy.default)

    def header(self, name: str) -> Optional[str]:
        """First `name` header, decoded, or None."""
        value = self.email().get(name)
        return None if value is None else str(value)

    def raw_header(self, name: str) -> Optional[str]:
        """First `name` header exactly as sent, unfolded, undecoded (None
        when absent); e.g. '"Web Shop" <shop@example.org>'."""
        if self.data is None:
            raise ValueError("server ran with store_data=False")
        parsed = email.parser.BytesHeaderParser(
            policy=email.policy.compat32).parsebytes(self.headers_bytes())
        value = parsed.get(name)
        if value is None:
            return None
        return value.replace("\r\n", "").replace("\n", "").strip()

    def headers_bytes(self) -> bytes:
        """The raw header section (up to, not including, the blank line)."""
        if self.data is None:
            raise ValueError("server ran with store_data=False")
        head, _, _ = self.data.partition(b"\r\n\r\n")
        return head + b"\r\n"

    def body_bytes(self) -> bytes:
        if self.data is None:
            raise ValueError("server ran with store_data=False")
        _, sep, body = self.data.partition(b"\r\n\r\n")
        return body if sep else b""


def fail_first(n: int, reply: str) -> Callable[[Any], Optional[str]]:
    """A reply callable: `reply` for the first n calls, then None (accept).
    Use for data_reply/mail_reply/rcpt_replies, e.g. a 451 then success."""
    lock = threading.Lock()
    count = [0]

    def spec(_arg: Any) -> Optional[str]:
        with lock:
            count[0] += 1
            return reply if count[0] <= n else None
    return spec


def _lookup_reply(spec: ReplySpec, key: Any) -> Optional[str]:
    """Resolve a reply spec (None, str, dict by address, callable)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return spec
    if callable(spec):
        return spec(key)
    if isinstance(key, str):
        wanted = key.lower()
        for k, v in spec.items():
            if k.lower() == wanted:
                return v
        return None
    return spec.get(key)


# --------------------------------------------------------------------------
# aiosmtpd glue


class _QuietDeprecation(logging.Filter):
    """aiosmtpd 1.4.3 logs "Session.login_data is deprecated" at WARNING on
    every successful AUTH, from its own code; drop just that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietDeprecation())


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.rcpt_option_lists: List[List[str]] = []


class _ImplicitTLS:
    """Stands in SMTP._tls_protocol on an implicit-TLS connection: aiosmtpd
    only checks that attribute for truth ("is TLS on?") outside STARTTLS."""

    def __bool__(self) -> bool:
        return True


_SNI_ATTR = "_switchmail_sni"


class _Hooks:
    """aiosmtpd handler: the hooks SMTP calls as hook(smtp, session,
    envelope, ...).  Each aiosmtpd default that a hook replaces is redone
    here (a hook returning a reply means aiosmtpd sets nothing itself)."""

    def __init__(self, owner: "SMTPServer"):
        self.owner = owner

    async def handle_HELO(self, smtp, session, envelope, hostname):
        session.host_name = hostname
        smtp._rec.ehlo.append(hostname)
        return f"250 {smtp.hostname}"

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
        o = self.owner
        session.host_name = hostname         # the 5-argument hook must
        smtp._rec.ehlo.append(hostname)
        drop = {d.upper() for d in o.ehlo_drop}
        if not o.offers_auth:
            drop.add("AUTH")
        # responses: ["250-name", "250-SIZE n", ..., "250 HELP"]
        keywords = [r[4:] for r in responses[1:]]
        keywords = [k for k in keywords if k.split(" ")[0].upper() not in drop]
        extra = list(o.ehlo_extra) + (["DSN"] if o.dsn else [])
        if keywords and keywords[-1] == "HELP":
            keywords[-1:-1] = extra
        else:
            keywords += extra
        lines = [smtp.hostname] + keywords
        return [("250 " if i == len(lines) - 1 else "250-") + text
                for i, text in enumerate(lines)]

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        o = self.owner
        reply = _lookup_reply(o.mail_reply, address)
        if reply:
            return reply
        if ("8BITMIME" in {d.upper() for d in o.ehlo_drop}
                and "BODY=8BITMIME" in mail_options):
            return "555 5.5.4 BODY=8BITMIME not supported"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        reply = _lookup_reply(self.owner.rcpt_replies, address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        envelope.rcpt_option_lists.append(list(rcpt_options))
        return "250 2.1.5 OK"


class _SMTP(SMTP):
    """aiosmtpd's SMTP protocol (one instance per connection) plus: a
    SessionRecord, implicit TLS, a streaming DATA reader, fault injection."""

    def __init__(self, owner: "SMTPServer", record: SessionRecord, *,
                 implicit_ctx: Optional[ssl.SSLContext],
                 auth_required: bool, **kwargs):
        self._owner = owner
        self._rec = record
        self._implicit_ctx = implicit_ctx
        self._greeted = False
        self._in_auth_exchange = False
        self._lost = False          # aiosmtpd's connection_lost has run
        self._finished = False      # the SessionRecord is closed
        self._error_keys: set = set()
        super().__init__(_Hooks(owner), auth_required=False, **kwargs)
        # Set after __init__, which warns on auth_required without TLS.
        self._auth_required = auth_required
        # Every command goes through _wrap_command's fault checks.
        self._smtp_methods = {verb: self._wrap_command(verb, method)
                              for verb, method in self._smtp_methods.items()}

    # -- plumbing ----------------------------------------------------------

    def _create_envelope(self) -> _Envelope:
        return _Envelope()

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(reader, writer)
        # Tap the command reader.  aiosmtpd reads commands with
        # readuntil(b"\n") (readline() is the same call: AUTH challenge
        # answers) and DATA lines with readuntil(b"\r\n").
        original = reader.readuntil

        async def readuntil(separator=b"\n"):
            line = await original(separator)
            if separator == b"\n":
                self._note_client_line(line)
            return line
        reader.readuntil = readuntil

    def _note_client_line(self, line: bytes) -> None:
        rec = self._rec
        if self._in_auth_exchange:
            rec.transcript.append(("C", "*" if line.strip() == b"*" else MASK))
            return
        if line.endswith(b"\n") and not line.endswith(b"\r\n"):
            rec.bare_lf = True
        text = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        verb = text.split(" ", 1)[0].upper()
        if verb == "AUTH":
            parts = text.split()
            if len(parts) > 2:
                text = " ".join(parts[:2] + [MASK])
        rec.commands.append(verb)
        rec.transcript.append(("C", text))

    async def challenge_auth(self, *args, **kwargs):
        self._in_auth_exchange = True
        try:
            return await super().challenge_auth(*args, **kwargs)
        finally:
            self._in_auth_exchange = False

    async def push(self, status):
        if not self._greeted:
            self._greeted = True
            banner = self._owner.greeting
            if banner is not None and banner.startswith("220"):
                status = banner
        text = status if isinstance(status, str) else status.decode(
            "utf-8", "backslashreplace")
        self._rec.transcript.append(("S", text))
        await super().push(status)

    def _note_tls(self, transport, mode: str) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is None:
            return
        rec = self._rec
        rec.tls, rec.tls_mode = True, mode
        rec.tls_version = sslobj.version()
        rec.tls_cipher = (sslobj.cipher() or (None,))[0]
        rec.tls_resumed = bool(sslobj.session_reused)
        rec.sni = getattr(sslobj, _SNI_ATTR, None)

    def _note_error(self, text: str, exc: Optional[BaseException] = None) -> None:
        """Record an error once (the same exception reaches us by two
        paths when a TLS handshake fails)."""
        key = repr(exc) if exc is not None else text
        if key not in self._error_keys:
            self._error_keys.add(key)
            self._rec.errors.append(text)

    def _finish(self) -> None:
        """Mark the session closed, once."""
        if not self._finished:
            self._finished = True
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            self._owner._session_closed(self)

    def _abort(self) -> None:
        """Drop the TCP connection at once, whatever is layered on it."""
        raw = self._original_transport or self.transport
        if raw is not None:
            raw.abort()

    # -- connection life ---------------------------------------------------

    def connection_made(self, transport) -> None:
        first = self.transport is None
        if first and self._implicit_ctx is not None:
            # Keep the ClientHello in the socket until start_tls() owns it.
            transport.pause_reading()
        super().connection_made(transport)
        if first:
            self._rec.peer = self.session.peer
        else:
            # aiosmtpd calls this again when STARTTLS completed (with a
            # fresh Session, as RFC 3207 wants).
            self._note_tls(transport, "starttls")

    def connection_lost(self, error) -> None:
        if error is not None:
            self._note_error(f"connection lost: {error!r}",
                             error.__cause__ or error)
        # aiosmtpd itself calls this a second time after a failed STARTTLS.
        if not self._lost:
            self._lost = True
            super().connection_lost(error)
        self._finish()

    async def handle_exception(self, error: Exception) -> str:
        # Called for exceptions in command handling, among them a failed
        # STARTTLS handshake (TLSSetupException caused by the SSL error).
        cause = error.__cause__ or error
        if isinstance(error, TLSSetupException):
            # An expected outcome of TLS tests: no traceback on stderr.
            self._note_error(f"STARTTLS handshake failed: {cause!r}", cause)
            return "500 Error: TLS handshake failed"   # never sent
        # Anything else is a bug in this harness: make it visible.
        self._note_error(f"{type(error).__name__}: {cause!r}", cause)
        self._owner._loop_error(self.loop, {
            "message": f"session {self._rec.id}: exception in a command",
            "exception": error})
        return await super().handle_exception(error)

    async def _handle_client(self):
        if self._implicit_ctx is not None and not await self._implicit_tls():
            return
        banner = self._owner.greeting
        if banner is not None and not banner.startswith("220"):
            await self._refuse_session(banner)
            return
        await super()._handle_client()

    async def _implicit_tls(self) -> bool:
        """TLS from the first byte (SMTPS, port 465 style).  Done here with
        loop.start_tls() rather than create_server(ssl=...) because asyncio
        reports a failed server-side handshake nowhere (ssl.SSLError is an
        OSError, logged in debug mode only) and the protocol never hears of
        the connection; here the failure lands in the SessionRecord."""
        raw = self.transport
        try:
            tls = await self.loop.start_tls(
                raw, self, self._implicit_ctx, server_side=True,
                ssl_handshake_timeout=self._owner.idle_timeout)
        except (Exception, asyncio.CancelledError) as exc:
            self._note_error(f"TLS handshake failed: {exc!r}", exc)
            raw.abort()
            self._finish()
            return False
        self._original_transport = raw
        self.transport = tls
        self._reader._transport = tls
        self._writer._transport = tls
        self._tls_protocol = _ImplicitTLS()
        self.session.ssl = {"ssl_object": tls.get_extra_info("ssl_object")}
        self._note_tls(tls, "implicit")
        return True

    async def _refuse_session(self, banner: str) -> None:
        """A non-220 banner.  421: close at once (RFC 5321 3.8).  Others
        (554): answer 503 to everything but QUIT (RFC 5321 3.1)."""
        await self.push(banner)
        if not banner.startswith("421"):
            while self.transport is not None:
                try:
                    line = await self._reader.readuntil()
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    break
                if line.strip().upper() == b"QUIT":
                    await self.push("221 2.0.0 Bye")
                    break
                await self.push("503 5.5.1 Error: no SMTP service here")
        if self.transport is not None:
            self.transport.close()

    # -- commands ----------------------------------------------------------

    def _wrap_command(self, verb: str, method):
        @functools.wraps(method)     # keeps the HELP syntax attributes
        async def run(arg):
            o = self._owner
            if o.drop_at and verb == o.drop_at.upper():
                self._abort()
                return
            if o.stall_at and verb == o.stall_at.upper():
                await self.loop.create_future()     # until cancelled
                return
            reply = (o.command_replies or {}).get(verb)
            if reply is not None:
                await self.push(reply)
                return
            await method(arg)
        return run

    def _getparams(self, params: Sequence[str]):
        # aiosmtpd answers 555 to any MAIL/RCPT parameter it does not know;
        # with dsn=True the RFC 3461 ones pass (they stay in the options).
        result = super()._getparams(params)
        if result is not None and self._owner.dsn:
            for key in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(key, None)
        return result

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's smtp_DATA, same replies and limits (lines split on CRLF
        only, 1001-byte line limit, data_size_limit), but the content goes
        into a sha256 (and a bytearray unless store_data=False) as it comes,
        so a 100 MB message is held once or not at all."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")

        store = self._owner.store_data
        content = bytearray()
        digest = hashlib.sha256()
        size = 0
        received = 0
        limit = self.data_size_limit
        fragments: List[bytes] = []
        state = "ok"            # "ok", "too long" (a line), "too much"
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as e:
                state = "too long" if state == "ok" else state
                line = await self._reader.read(e.consumed)
            if not fragments and line == b".\r\n":
                break
            received += len(line)
            if state == "ok" and limit and received > limit:
                state = "too much"
            fragments.append(line)
            if line.endswith(b"\r\n"):
                if state == "ok":
                    full = b"".join(fragments)
                    if len(full) > self.line_length_limit:
                        state = "too long"
                    else:
                        if full.startswith(b"."):
                            full = full[1:]          # dot-unstuffing
                        digest.update(full)
                        size += len(full)
                        if store:
                            content += full
                fragments.clear()
        if state == "ok" and not store:
            content = bytearray()
        if state != "ok":
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)"
                            if state == "too long"
                            else "552 Error: Too much mail data")
            self._set_post_data_state()
            return

        o = self._owner
        env = self.envelope
        record = o._new_message(
            self, env, bytes(content) if store else None, size,
            digest.hexdigest())
        del content
        if o.drop_at and o.drop_at.upper() == "DATA_END":
            o._add_message(record, accepted=False)
            self._abort()
            return
        if o.stall_at and o.stall_at.upper() == "DATA_END":
            o._add_message(record, accepted=False)
            await self.loop.create_future()         # until cancelled
            return
        reply = o.data_reply(record) if callable(o.data_reply) else o.data_reply
        if not reply:
            reply = f"250 2.0.0 OK queued as T{record.seq:06d}"
        record = replace(record, reply=reply)
        accepted = reply.startswith("2")
        if accepted:
            self._rec.messages += 1
        o._add_message(record, accepted=accepted)
        self._set_post_data_state()
        await self.push(reply)


# --------------------------------------------------------------------------
# The server


class SMTPServer:
    """An aiosmtpd server in its own thread.  See the module docstring.

    mode        "plain" | "starttls" | "implicit"
    cert        certs.Leaf or (certfile, keyfile); needed by the TLS modes
    require_starttls   (starttls) refuse all but EHLO/NOOP/QUIT before TLS
    tls_min_version, tls_max_version   ssl.TLSVersion limits
    ciphers     OpenSSL cipher string for SSLContext.set_ciphers, e.g.
                "ECDHE-RSA-AES128-SHA"; it picks TLS 1.2 (and older)
                suites only, so pair it with tls_max_version=TLSv1_2 to
                force one (None: OpenSSL's default list); a trailing
                ":@SECLEVEL=0" also admits weak certificates and TLS < 1.2
    auth        None or (user, password): AUTH PLAIN and LOGIN offered
    auth_mechanisms    subset of ("PLAIN", "LOGIN") to offer
    auth_required      MAIL needs AUTH first (default: True when auth set)
    auth_require_tls   AUTH only once TLS is on (default True; False lets
                       a test see whether the client AUTHs in plaintext)
    auth_reply  reply line every AUTH fails with (offers AUTH even when
                auth is None)
    store_data  keep the DATA bytes (False: only size and sha256)
    size_limit  SIZE advertised and enforced; None: no limit, no SIZE
    smtputf8    advertise and accept SMTPUTF8 (aiosmtpd then also takes
                UTF-8 in commands)
    dsn         advertise DSN and accept RET/ENVID/NOTIFY/ORCPT
    ehlo_extra  keywords to add to the EHLO reply, e.g. ("PIPELINING",)
    ehlo_drop   keywords to remove, e.g. ("8BITMIME",) (BODY=8BITMIME is
                then refused with 555)
    hostname    name in the banner and EHLO reply
    idle_timeout  seconds of client silence before the server hangs up
    name        label for dumps (e.g. "provider")
    port        0: the kernel picks; else this port (SO_REUSEADDR), so a
                test can stop a server and start another on the same port
    plus the fault injection arguments listed in the module docstring.
    """

    def __init__(self, *, mode: str = "plain", host: str = LOCALHOST,
                 cert: Any = None, require_starttls: bool = False,
                 tls_min_version: Optional[ssl.TLSVersion] = None,
                 tls_max_version: Optional[ssl.TLSVersion] = None,
                 ciphers: Optional[str] = None,
                 auth: Optional[Tuple[str, str]] = None,
                 auth_mechanisms: Sequence[str] = BUILTIN_AUTH,
                 auth_required: Optional[bool] = None,
                 auth_require_tls: bool = True,
                 auth_reply: Optional[str] = None,
                 greeting: Optional[str] = None,
                 mail_reply: ReplySpec = None,
                 rcpt_replies: ReplySpec = None,
                 data_reply: Union[None, str, Callable] = None,
                 command_replies: Optional[Dict[str, str]] = None,
                 drop_at: Optional[str] = None,
                 stall_at: Optional[str] = None,
                 store_data: bool = True,
                 size_limit: Optional[int] = DEFAULT_SIZE_LIMIT,
                 smtputf8: bool = False, dsn: bool = False,
                 ehlo_extra: Sequence[str] = (), ehlo_drop: Sequence[str] = (),
                 hostname: str = "localhost",
                 ident: str = "switchmail test ESMTP",
                 idle_timeout: float = 60.0, name: str = "smtpd",
                 port: int = 0):
        if mode not in ("plain", "starttls", "implicit"):
            raise ValueError(f"mode {mode!r} is not plain, starttls or implicit")
        unknown = {m.upper() for m in auth_mechanisms} - set(BUILTIN_AUTH)
        if unknown:
            raise ValueError(f"aiosmtpd 1.4.3 has no AUTH {sorted(unknown)}")
        self.mode = mode
        self.host = host
        self.fixed_port = port
        self.port = 0
        self.name = name
        self.cert = cert
        self.auth = tuple(auth) if auth is not None else None
        self.auth_reply = auth_reply
        self.greeting = greeting
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies
        self.data_reply = data_reply
        self.command_replies = {k.upper(): v for k, v in
                                (command_replies or {}).items()}
        self.drop_at = drop_at
        self.stall_at = stall_at
        self.store_data = store_data
        self.dsn = dsn
        self.ehlo_extra = tuple(ehlo_extra)
        self.ehlo_drop = tuple(ehlo_drop)
        self.idle_timeout = idle_timeout
        self.offers_auth = auth is not None or auth_reply is not None

        self._ssl_context = None
        if mode != "plain":
            if cert is None:
                raise ValueError(f"mode {mode!r} needs cert=")
            self._ssl_context = self._make_ssl_context(
                cert, tls_min_version, tls_max_version, ciphers)
        if auth_required is None:
            auth_required = auth is not None
        self._smtp_kwargs = dict(
            implicit_ctx=self._ssl_context if mode == "implicit" else None,
            tls_context=self._ssl_context if mode == "starttls" else None,
            require_starttls=require_starttls,
            auth_required=auth_required,
            auth_require_tls=auth_require_tls,
            auth_exclude_mechanism=[m for m in BUILTIN_AUTH if m not in
                                    {a.upper() for a in auth_mechanisms}],
            authenticator=self._authenticate,
            data_size_limit=size_limit,
            enable_SMTPUTF8=smtputf8,
            decode_data=False,
            hostname=hostname,
            ident=ident,
            timeout=idle_timeout,
        )

        self._cond = threading.Condition()
        self._messages: List[MessageRecord] = []
        self._rejected: List[MessageRecord] = []
        self._sessions: List[SessionRecord] = []
        self._sni_seen: List[Optional[str]] = []
        self._errors: List[str] = []
        self._seq = 0               # messages (accepted or not) so far
        self._session_seq = 0       # connections so far
        self._protocols: set = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._aserver = None

    # -- TLS and AUTH ------------------------------------------------------

    def _make_ssl_context(self, cert, min_v, max_v,
                          ciphers=None) -> ssl.SSLContext:
        certfile, keyfile = ((cert.cert, cert.key) if hasattr(cert, "key")
                             else tuple(cert))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if ciphers is not None:
            # Before the certificate: "...:@SECLEVEL=0" lets a test load
            # one that the default level refuses (RSA 1024, SHA-1).
            ctx.set_ciphers(ciphers)     # ssl.SSLError: no such suite
        ctx.load_cert_chain(certfile, keyfile)
        if min_v is not None:
            ctx.minimum_version = min_v
        if max_v is not None:
            ctx.maximum_version = max_v
        ctx.sni_callback = self._sni_callback
        return ctx

    def _sni_callback(self, sslobj, server_name, ctx):
        # Called for every ClientHello (server_name None without SNI).  The
        # name is parked on the SSLObject, which the transport exposes as
        # "ssl_object" once the handshake is done.
        try:
            setattr(sslobj, _SNI_ATTR, server_name)
        except AttributeError:
            pass
        with self._cond:
            self._sni_seen.append(server_name)
        return None

    def _authenticate(self, smtp, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode("utf-8", "backslashreplace")
        ok = (self.auth_reply is None and self.auth is not None
              and auth_data.login == self.auth[0].encode()
              and auth_data.password == self.auth[1].encode())
        smtp._rec.auth_attempts.append(AuthAttempt(mechanism, login, ok))
        if ok:
            smtp._rec.auth_user = login
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False, message=self.auth_reply)

    # -- records (loop thread) ---------------------------------------------

    def _factory(self) -> _SMTP:
        with self._cond:
            self._session_seq += 1
            record = SessionRecord(id=self._session_seq)
            self._sessions.append(record)
        proto = _SMTP(self, record, loop=self._loop, **self._smtp_kwargs)
        self._protocols.add(proto)
        return proto

    def _session_closed(self, proto: _SMTP) -> None:
        self._protocols.discard(proto)
        with self._cond:
            proto._rec.closed = True
            self._cond.notify_all()

    def _new_message(self, proto: _SMTP, env: _Envelope, data, size, sha):
        rec = proto._rec
        with self._cond:
            self._seq += 1
            seq = self._seq
        return MessageRecord(
            seq=seq, session_id=rec.id, mail_from=env.mail_from,
            rcpt_tos=list(env.rcpt_tos), mail_options=list(env.mail_options),
            rcpt_options=[list(o) for o in env.rcpt_option_lists],
            data=data, size=size, sha256=sha, smtputf8=bool(env.smtp_utf8),
            helo=proto.session.host_name, auth_user=rec.auth_user,
            tls=rec.tls, tls_version=rec.tls_version, sni=rec.sni)

    def _add_message(self, record: MessageRecord, accepted: bool) -> None:
        with self._cond:
            (self._messages if accepted else self._rejected).append(record)
            self._cond.notify_all()

    def _loop_error(self, loop, context) -> None:
        exc = context.get("exception")
        text = context.get("message", "")
        if exc is not None:
            text += f": {exc!r}"
        with self._cond:
            self._errors.append(text)

    # -- life --------------------------------------------------------------

    def start(self) -> "SMTPServer":
        if self._thread is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET6 if ":" in self.host
                             else socket.AF_INET, socket.SOCK_STREAM)
        if self.fixed_port:     # the same port again: a relay that comes back
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.fixed_port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def run():
            loop = self._loop
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(self._loop_error)
            try:
                self._aserver = loop.run_until_complete(
                    loop.create_server(self._factory, sock=sock, backlog=64))
            except BaseException as exc:     # reported by start()
                failure.append(exc)
                sock.close()
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True,
                                        name=f"{self.name}:{self.port}")
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    async def _shutdown(self) -> None:
        self._aserver.close()
        for proto in list(self._protocols):
            proto._abort()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._aserver.wait_closed()

    def stop(self) -> None:
        """Close the listener and every connection, end the thread."""
        if self._thread is None:
            return
        loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            self._thread = None
            with self._cond:
                for rec in self._sessions:
                    rec.closed = True
                self._cond.notify_all()

    def __enter__(self) -> "SMTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test-side accessors (any thread) ----------------------------------

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)

    @property
    def messages(self) -> List[MessageRecord]:
        with self._cond:
            return list(self._messages)

    @property
    def rejected(self) -> List[MessageRecord]:
        with self._cond:
            return list(self._rejected)

    @property
    def sessions(self) -> List[SessionRecord]:
        with self._cond:
            return list(self._sessions)

    @property
    def sni_seen(self) -> List[Optional[str]]:
        with self._cond:
            return list(self._sni_seen)

    @property
    def errors(self) -> List[str]:
        with self._cond:
            return list(self._errors)

    def clear(self) -> None:
        """Forget what was recorded so far (open sessions go on)."""
        with self._cond:
            self._messages.clear()
            self._rejected.clear()
            self._sessions[:] = [s for s in self._sessions if not s.closed]
            self._sni_seen.clear()
            self._errors.clear()

    def wait_for(self, n: int = 1, timeout: float = 10.0) -> List[MessageRecord]:
        """Block until at least n messages were accepted; return them all.
        Raises TimeoutError with the sessions' transcripts otherwise."""
        with self._cond:
            if self._cond.wait_for(lambda: len(self._messages) >= n, timeout):
                return list(self._messages)
        raise TimeoutError(f"{self.name}: {len(self.messages)} of {n} messages "
                           f"after {timeout}s\n{self.dump()}")

    def wait_message(self, predicate: Callable[[MessageRecord], bool],
                     timeout: float = 10.0) -> MessageRecord:
        """Block until an accepted message satisfies predicate; return the
        first that does.  Raises TimeoutError with the transcripts."""
        def find():
            return next((m for m in self._messages if predicate(m)), None)
        with self._cond:
            found = self._cond.wait_for(find, timeout)
            if found is not None:
                return found
        raise TimeoutError(f"{self.name}: no matching message after "
                           f"{timeout}s\n{self.dump()}")

    def wait_closed(self, n: int = 1, timeout: float = 10.0) -> List[SessionRecord]:
        """Block until at least n sessions exist and every one is closed;
        return them.  (A connection the kernel accepted but the loop has not
        picked up yet is not counted: pass the n you expect.)"""
        def done():
            return (len(self._sessions) >= n
                    and all(s.closed for s in self._sessions))
        with self._cond:
            if self._cond.wait_for(done, timeout):
                return list(self._sessions)
        raise TimeoutError(f"{self.name}: sessions not closed after "
                           f"{timeout}s\n{self.dump()}")

    def dump(self) -> str:
        """Every session's transcript, for failure messages."""
        with self._cond:
            sessions = list(self._sessions)
            head = (f"{self.name} {self.mode} {self.host}:{self.port}: "
                    f"{len(self._messages)} accepted, {len(self._rejected)} "
                    f"rejected, errors={self._errors}")
        return "\n".join([head] + [s.dump() for s in sessions])

    def __repr__(self) -> str:
        return f"<SMTPServer {self.name} {self.mode} {self.host}:{self.port}>"


# --------------------------------------------------------------------------
# Raw socket servers


class _RawServer:
    """Listens on 127.0.0.1:<free port>; each connection runs handle(conn)
    in its own thread.  stop() wakes every blocked thread and joins it."""

    def __init__(self, host: str = LOCALHOST):
        self.host = host
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._cond = threading.Condition()
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"{type(self).__name__}:{self.port}")
        self._accepter.start()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    conn, _ = self._listener.accept()
                    with self._cond:
                        if self._stopping:
                            conn.close()
                            return
                        self.connections += 1
                        self._conns.append(conn)
                        t = threading.Thread(target=self._serve, args=(conn,),
                                             daemon=True)
                        self._threads.append(t)
                        self._cond.notify_all()
                    t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def wait_connections(self, n: int = 1, timeout: float = 10.0) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections >= n, timeout):
                raise TimeoutError(f"{self!r}: {self.connections} of {n} "
                                   f"connections after {timeout}s")
            return self.connections

    def stop(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            conns = list(self._conns)
            threads = list(self._threads)
        self._wake_w.send(b"x")
        self._accepter.join(10)
        self._listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)   # wakes a blocked recv()
            except OSError:
                pass
        for t in threads:
            t.join(10)
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port}>"


class SilentServer(_RawServer):
    """Accepts and never sends a byte (client greeting/timeout tests).
    .received holds what clients sent, per connection."""

    def __init__(self, host: str = LOCALHOST):
        self.received: List[bytes] = []
        super().__init__(host)

    def handle(self, conn: socket.socket) -> None:
        buf = bytearray()
        with self._cond:
            self.received.append(b"")
            index = len(self.received) - 1
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
            with self._cond:
                self.received[index] = bytes(buf)


class CloseServer(_RawServer):
    """Accepts and closes at once.  reset=True sends a TCP RST instead of a
    FIN (SO_LINGER 0)."""

    def __init__(self, host: str = LOCALHOST, reset: bool = False):
        self.reset = reset
        super().__init__(host)

    def handle(self, conn: socket.socket) -> None:
        if self.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))


class PlainGreetingServer(_RawServer):
    """A plaintext ESMTP server that offers no STARTTLS: the client
    configured for encryption = "tls" must give up (after QUIT) here.

    It answers a whole transaction (so a client that carries on regardless
    is caught in the act): .commands holds the verbs of every connection
    in order, .lines the command lines (AUTH payloads masked), .messages
    the DATA of every message it was sent.  offer_auth=True adds
    "AUTH PLAIN LOGIN" to EHLO (any AUTH then fails with 535)."""

    GREETING = b"220 plain.example ESMTP\r\n"

    def __init__(self, host: str = LOCALHOST, offer_auth: bool = False):
        self.offer_auth = offer_auth
        self.commands: List[str] = []
        self.lines: List[str] = []
        self.messages: List[bytes] = []
        super().__init__(host)

    def _note(self, text: str) -> str:
        verb = text.split(" ", 1)[0].upper()
        if verb == "AUTH" and len(text.split()) > 2:
            text = " ".join(text.split()[:2] + [MASK])
        with self._cond:
            self.commands.append(verb)
            self.lines.append(text)
        return verb

    def handle(self, conn: socket.socket) -> None:
        f = conn.makefile("rwb", buffering=0)
        w = conn.sendall
        w(self.GREETING)
        while True:
            line = f.readline()
            if not line:
                return
            verb = self._note(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            if verb == "EHLO":
                ext = [b"plain.example", b"8BITMIME", b"SIZE 10240000"]
                if self.offer_auth:
                    ext.append(b"AUTH PLAIN LOGIN")
                ext.append(b"HELP")
                w(b"".join((b"250 " if i == len(ext) - 1 else b"250-") + e
                           + b"\r\n" for i, e in enumerate(ext)))
            elif verb == "HELO":
                w(b"250 plain.example\r\n")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                w(b"250 OK\r\n")
            elif verb == "DATA":
                w(b"354 go ahead\r\n")
                data = bytearray()
                while True:
                    dl = f.readline()
                    if not dl or dl == b".\r\n":
                        break
                    data += dl[1:] if dl.startswith(b".") else dl
                with self._cond:
                    self.messages.append(bytes(data))
                w(b"250 OK\r\n")
            elif verb == "STARTTLS":
                w(b"454 4.7.0 TLS not available\r\n")
            elif verb == "AUTH" and self.offer_auth:
                w(b"535 5.7.8 Authentication credentials invalid\r\n")
            elif verb == "QUIT":
                w(b"221 2.0.0 Bye\r\n")
                return
            else:
                w(b"502 5.5.2 Error: command not recognized\r\n")
