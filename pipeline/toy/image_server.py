"""A loopback HTTP server for the toy world's images, with deliberately broken URLs.

The toy URL lists name `http://toy-images.local/...`; the download step serves the toy world's
`www/` folder here on 127.0.0.1 (a free port) and rewrites that prefix to it, the same way a real
user would point a URL list at a local mirror. Paths under `/broken/` misbehave on purpose:

    /broken/404/<name>        -> 404 Not Found
    /broken/truncated/<name>  -> 200 with only the first 160 bytes of a JPEG
    /broken/timeout/<name>    -> sleeps longer than the downloader's time-out, then closes
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

TOY_HOST = "http://toy-images.local"


class _Handler(SimpleHTTPRequestHandler):
    stall_s = 5.0

    def log_message(self, format, *args):  # keep test and demo output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server naming
        if self.path.startswith("/broken/404/"):
            self.send_error(404, "Not Found")
        elif self.path.startswith("/broken/truncated/"):
            body = (Path(self.directory) / "scenes" / Path(self.path).name).read_bytes()[:160]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/broken/timeout/"):
            time.sleep(self.stall_s)
            self.close_connection = True
        else:
            super().do_GET()


@contextmanager
def serve(www_root: str | Path, stall_s: float = 5.0) -> Iterator[str]:
    """Serve `www_root` on 127.0.0.1 for the duration of the block; yields the base URL."""
    handler = type("ToyHandler", (_Handler,), {"stall_s": stall_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www_root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="toy-image-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def toy_mirror(www_root: str | Path, stall_s: float = 5.0) -> Iterator[dict[str, str]]:
    """The URL rewrite that points the toy URL lists at a loopback server running for the block."""
    with serve(www_root, stall_s) as base:
        yield {TOY_HOST: base}


if __name__ == "__main__":  # python -m pipeline.toy.image_server LAKE/toy_world/www
    import sys

    with serve(sys.argv[1] if len(sys.argv) > 1 else "lake/toy/toy_world/www") as url:
        print(f"serving; pass --mirror {TOY_HOST}={url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
