# SPDX-License-Identifier: MIT
# Long-lived TCP flows for tests/system/run.sh, run inside the container (python3-minimal only).
#   flow.py serve PORT                    echo server (one thread per connection)
#   flow.py client HOST PORT COUNTFILE    one connection: a round trip every 0.1 s, the count of
#                                         round trips written to COUNTFILE; "FAIL ..." and exit 1
#                                         when the connection breaks. Ends after 600 s or
#                                         when COUNTFILE.stop exists.
import socket
import sys
import threading
import time


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)

    def echo(c):
        with c:
            while True:
                data = c.recv(4096)
                if not data:
                    return
                c.sendall(data)

    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def client(host, port, countfile):
    def put(text):
        with open(countfile + ".tmp", "w") as f:
            f.write(text + "\n")
        import os
        os.replace(countfile + ".tmp", countfile)

    try:
        c = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        put("FAIL connect: %s" % e)
        return 1
    c.settimeout(10)
    n = 0
    end = time.monotonic() + 600
    import os
    while time.monotonic() < end and not os.path.exists(countfile + ".stop"):
        try:
            c.sendall(b"ping %d\n" % n)
            got = b""
            while not got.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    raise OSError("closed by peer")
                got += chunk
            if got != b"ping %d\n" % n:
                raise OSError("echo mismatch: %r" % got)
        except OSError as e:
            put("FAIL after %d round trips: %s" % (n, e))
            return 1
        n += 1
        put(str(n))
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
