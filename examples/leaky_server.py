"""A request loop that leaks: every response is kept in a cache nobody ever evicts.

Run it, then from another terminal (it prints its PID):

    mprofxx attach --peak -t 10 PID && mprofxx peak --lines -n 3
    mprofxx attach --growth -t 10 PID
"""

import json
import os
import random
import time


class Response:
    def __init__(self, request_id: int, body: bytes) -> None:
        self.request_id = request_id
        self.body = body
        self.headers = {"content-length": str(len(body)), "content-type": "application/json"}


RESPONSES: dict[int, Response] = {}  # "cache" of responses: never evicted


def render(request_id: int) -> bytes:
    rows = [{"id": request_id, "n": n, "score": random.random()} for n in range(200)]
    return json.dumps(rows).encode()


def handle(request_id: int) -> Response:
    body = render(request_id)
    response = Response(request_id, body)
    RESPONSES[request_id] = response  # the leak
    return response


def serve() -> None:
    print(f"serving, PID {os.getpid()}", flush=True)
    request_id = 0
    while True:
        handle(request_id)
        request_id += 1
        time.sleep(0.005)


if __name__ == "__main__":
    serve()
