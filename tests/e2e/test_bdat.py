"""CHUNKING (RFC 3030) through the bridge: libESMTP sends BDAT chunks when
the server offers CHUNKING; the relay forwards each chunk as data (never as
commands) and passes early replies back at once, so a refusal of the first
chunk stops the rest.  A raw server on 127.0.0.1 plays the provider.
"""
import socket
import threading

from conftest import make_config

EX_OK = 0


class ChunkingServer:
    """One connection on 127.0.0.1 offering PIPELINING and CHUNKING; each
    BDAT chunk goes to chunk(conn, f, size), which reads it and replies.
    rcvbuf sets a small receive buffer."""

    def __init__(self, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.octets = 0           # everything received, commands and chunks
        self.chunks = 0
        self.body = bytearray()
        self.verbs = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def chunk(self, conn, f, size):
        raise NotImplementedError

    def _serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(20)
        f = conn.makefile("rb", buffering=0)
        conn.sendall(b"220 chunks.test ESMTP\r\n")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                self.octets += len(line)
                verb = line.split(b" ", 1)[0].strip().upper()
                self.verbs.append(verb.decode())
                if verb == b"EHLO":
                    conn.sendall(b"250-chunks.test\r\n250-PIPELINING\r\n"
                                 b"250-CHUNKING\r\n250 8BITMIME\r\n")
                elif verb == b"BDAT":
                    self.chunks += 1
                    self.chunk(conn, f, int(line.split()[1]))
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()
            self.sock.close()

    def take(self, f, size, pause=0.0):
        """Read size octets of a chunk (pausing between reads if asked)."""
        import time
        while size > 0:
            data = f.read(min(size, 65536))
            if not data:
                raise OSError("closed in a chunk")
            self.body += data
            self.octets += len(data)
            size -= len(data)
            if pause:
                time.sleep(pause)


class ChunkServer(ChunkingServer):
    """Every chunk accepted ("ok"), or the first one refused with 552 and
    the later ones with 503 ("refuse")."""

    def __init__(self, mode):
        self.mode, self.refused = mode, False
        super().__init__()

    def chunk(self, conn, f, size):
        self.take(f, size)
        if self.mode == "refuse" and not self.refused:
            self.refused = True
            conn.sendall(b"552 5.3.4 Message too big for this mailbox\r\n")
        elif self.refused:
            conn.sendall(b"503 5.5.1 No transaction\r\n")
        else:
            conn.sendall(b"250 2.0.0 chunk ok\r\n")


def config(tmp_path, srv):
    return make_config(tmp_path, native={"host": "127.0.0.1", "port": srv.port,
                                         "encryption": "none",
                                         "from": "no-reply@platform.example",
                                         "timeout": 5})


def body(size):
    line = b"chunked " + b"x" * 88 + b"\r\n"
    return line * (size // len(line))


def test_bdat_chunks_arrive_whole(tmp_path, run_switchmail):
    srv = ChunkServer("ok")
    text = body(300_000)
    r = run_switchmail(["-i", "to@x.example"], b"Subject: chunks\r\n\r\n" + text,
                       config(tmp_path, srv))
    assert r.returncode == EX_OK, r
    srv.thread.join(10)
    assert "BDAT" in srv.verbs and "DATA" not in srv.verbs
    assert srv.chunks >= 2
    assert bytes(srv.body).endswith(text)


def test_refused_first_chunk_stops_the_transfer(tmp_path, run_switchmail):
    """A 552 to the first chunk reaches libESMTP while it pipelines the
    next ones (it polls between chunks without waiting): it stops early,
    and most of the 8 MB never leaves.  How many chunks go before the
    refusal arrives depends on timing; all of them went when those polls
    never looked at the server."""
    srv = ChunkServer("refuse")
    r = run_switchmail(["-i", "to@x.example"], b"Subject: big\r\n\r\n" + body(8_000_000),
                       config(tmp_path, srv))
    assert r.returncode != EX_OK, r
    assert "refused the message" in r.stderr
    srv.thread.join(10)
    assert srv.octets < 4_000_000, f"{srv.octets} octets after the refusal ({srv.chunks} chunks)"


class SlowReader(ChunkingServer):
    """A small receive buffer and chunks read slowly: the client's sends
    meet a full socket buffer and must wait."""

    def __init__(self):
        super().__init__(rcvbuf=4096)

    def chunk(self, conn, f, size):
        self.take(f, size, pause=0.001)
        conn.sendall(b"250 2.0.0 chunk taken\r\n")


def test_slow_reading_server_gets_the_whole_message(tmp_path, run_switchmail):
    """The relay's sends wait on a full socket buffer (EAGAIN, then poll);
    none of that may show in errno when libESMTP's write returns: libESMTP
    checks errno after each BDAT chunk and drops the connection if set."""
    srv = SlowReader()
    text = body(12_000_000)    # more than the kernel's 4 MiB send buffer
    r = run_switchmail(["-i", "to@x.example"], b"Subject: slow\r\n\r\n" + text,
                       config(tmp_path, srv))
    assert r.returncode == EX_OK, r
    srv.thread.join(20)
    assert bytes(srv.body).endswith(text)
