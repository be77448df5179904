"""A stand-in for vLLM's OpenAI server, for tests of what starts and stops it.

Run as the "interpreter" of a fake vLLM environment (see fake_vllm_python): it answers
`-c` (locating a bundled model) with a folder, and `-m vllm.entrypoints...` by serving
/health and /v1/models for the served name on the given port.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def options(argv: list[str]) -> dict[str, str]:
    parsed, key = {}, None
    for token in argv:
        if token.startswith("--"):
            key = token
            parsed[key] = ""
        elif key:
            parsed[key], key = token, None
    return parsed


def main(argv: list[str]) -> None:
    if argv[0] == "-c":  # where is the bundled model?
        print(os.environ["FAKE_VLLM_MODEL_DIR"])
        return
    args = options(argv)
    name, port = args["--served-model-name"], int(args["--port"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                body = b""
            elif self.path == "/v1/models":
                body = json.dumps(
                    {"object": "list", "data": [{"id": name, "parent": None}]}
                ).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
