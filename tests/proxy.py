"""A TCP proxy on loopback that can drop connections, as a flaky network would."""

from __future__ import annotations

import contextlib
import socket
import threading


class DroppingProxy:
    """A TCP proxy to a real server that cuts its first connection after `cut` bytes back
    (when `cut` is given), or every open connection when asked (`cut_all`)."""

    def __init__(self, target_port: int, cut: int | None = None) -> None:
        self.target_port = target_port
        self.cut = cut
        self.connections = 0
        self._open: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(client)
            limit = self.cut if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, limit), daemon=True).start()

    def cut_all(self) -> int:
        """Cut every connection open now (as a network failure would); return how many."""
        cut = 0
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                cut += 1
        self._open.clear()
        return cut

    def _pipe(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def forward_requests() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=forward_requests, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(4096):
                if limit is not None and sent + len(data) > limit:
                    client.sendall(data[: limit - sent])
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            # shutdown() sends FIN at once, even while another thread is blocked in recv().
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
