#!/usr/bin/python3
"""Mail clients for the end-to-end tests: one opens an SMTP connection to
port 25 every 20 ms and waits for the banner, one holds an IMAP session open
and sends NOOP every 100 ms. They run until /tmp/stop-clients exists, then
print what they saw as JSON: connections made, refused, failed, the slowest
banner, and whether the IMAP session was dropped."""
import json
import os
import socket
import threading
import time

STOP = "/tmp/stop-clients"
seen = {"smtp": 0, "refused": 0, "failed": 0, "slowest": 0.0,
        "imap_noops": 0, "imap_dropped": False, "imap_slowest": 0.0}


def smtp():
    while not os.path.exists(STOP):
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", 25), timeout=60) as s:
                banner = s.recv(512)
                if not banner.startswith(b"220"):
                    seen["failed"] += 1
                    continue
                s.sendall(b"QUIT\r\n")
            seen["smtp"] += 1
            seen["slowest"] = max(seen["slowest"], time.monotonic() - started)
        except ConnectionRefusedError:
            seen["refused"] += 1
        except OSError:
            seen["failed"] += 1
        time.sleep(0.02)


def imap():
    try:
        with socket.create_connection(("127.0.0.1", 143), timeout=60) as s:
            f = s.makefile("rb")
            if not f.readline().startswith(b"* OK"):
                seen["imap_dropped"] = True
                return
            n = 0
            while not os.path.exists(STOP):
                started = time.monotonic()
                s.sendall(b"a%d NOOP\r\n" % n)
                if not f.readline().startswith(b"a%d OK" % n):
                    seen["imap_dropped"] = True
                    return
                seen["imap_slowest"] = max(seen["imap_slowest"], time.monotonic() - started)
                seen["imap_noops"] += 1
                n += 1
                time.sleep(0.1)
    except OSError:
        seen["imap_dropped"] = True


threads = [threading.Thread(target=smtp), threading.Thread(target=imap)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(seen))
