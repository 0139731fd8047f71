"""A local HTTP server for download tests: cut connections, Range requests, wrong files."""

import hashlib
import http.server
import threading


def sha(data: bytes) -> str:
    """SHA-256 of ``data`` as the downloaders expect it (hex)."""
    return hashlib.sha256(data).hexdigest()


class Server:
    """A threaded HTTP server of one file at ``/<name>``, with faults chosen per test.

    Honours Range requests (206, or 416 past the end) unless ``honour_range`` is False; with
    ``drop_first_after`` set, the first connection closes after that many bytes.
    """

    def __init__(self, body: bytes, name: str = "LJSpeech-1.1.tar.bz2"):
        self.body = body
        self.drop_first_after = None  # bytes sent before closing the first connection
        self.honour_range = True
        self.requests = []  # (path, Range header) of each request
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                if self.path != f"/{name}":
                    self.send_error(404)
                    return
                start = 0
                if range_header and server.honour_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(server.body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(server.body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                data = server.body[start:]
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.drop_first_after is not None and len(server.requests) == 1:
                    self.wfile.write(data[: server.drop_first_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
