#!/usr/bin/python3
"""An IMAP client for the end-to-end test of `restore --mailbox`, logged in
as alice@example.com on 127.0.0.1:143.

  imap-restore.py setup    makes the folders Invoices and Invoices.2025 with
                           messages and flags, subscribes them; prints them
  imap-restore.py session  in one session: appends a new message to INBOX,
                           deletes Invoices and its subfolder, touches
                           /tmp/deleted, waits for /tmp/restored, then prints
                           what the same session lists and fetches
All output is JSON."""
import imaplib
import json
import os
import re
import sys
import time

PASSWORD = "alice-secret"
MESSAGES = {
    "Invoices": [
        ("inv-1", ["\\Seen"]),
        ("inv-2", ["\\Seen", "\\Flagged"]),
        ("inv-3", ["\\Answered", "\\Seen", "Paid"]),
        ("inv-4", []),
    ],
    "Invoices.2025": [
        ("inv-2025", ["\\Seen", "\\Flagged"]),
    ],
}


def login():
    imap = imaplib.IMAP4("127.0.0.1", 143)
    imap.login("alice@example.com", PASSWORD)
    return imap


def message(msgid):
    return (f"From: bob@example.org\r\nTo: alice@example.com\r\n"
            f"Message-ID: <{msgid}@example.org>\r\nSubject: {msgid}\r\n\r\n"
            f"The body of {msgid}.\r\n").encode()


def names(lines):
    """Folder names from LIST or LSUB answers."""
    found = []
    for line in lines:
        m = re.match(rb'\(.*?\) "(.)" (.*)$', line)
        name = m.group(2).decode()
        found.append(name[1:-1] if name.startswith('"') else name)
    return sorted(found)


def folder(imap, name):
    """Message-ID -> (sorted flags, body) of every message in a folder."""
    typ, _ = imap.select(f'"{name}"', readonly=True)
    assert typ == "OK", (name, typ)
    typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
    found = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = imaplib.ParseFlags(item[0])
        body = item[1].decode()
        m = re.search(r"Message-ID: <([^@]+)@", body)
        msgid = m.group(1) if m else f"without-id-{len(found)}"
        found[msgid] = [sorted(f.decode() for f in flags if f != b"\\Recent"), body]
    return found


def setup():
    imap = login()
    for name, msgs in MESSAGES.items():
        imap.create(f'"{name}"')
        imap.subscribe(f'"{name}"')
        for msgid, flags in msgs:
            typ, _ = imap.append(f'"{name}"', "(" + " ".join(flags) + ")", None, message(msgid))
            assert typ == "OK"
    print(json.dumps({name: folder(imap, name) for name in MESSAGES}))
    imap.logout()


def session():
    imap = login()
    imap.append("INBOX", "(\\Seen)", None, message("after-the-backup"))
    imap.select("INBOX")
    imap.close()
    for name in sorted(MESSAGES, reverse=True):
        typ, _ = imap.delete(f'"{name}"')
        assert typ == "OK", typ
    before = names(imap.list()[1])
    open("/tmp/deleted", "w").close()
    deadline = time.time() + 600
    while not os.path.exists("/tmp/restored"):
        assert time.time() < deadline
        imap.noop()
        time.sleep(0.2)
    listed = names(imap.list()[1])
    subscribed = names(imap.lsub()[1])
    restored = {name: folder(imap, name) for name in listed
                if name.startswith("Restored ") and "Invoices" in name}
    # The box's first messages claim sizes (S=) that are not theirs, which
    # dovecot refuses to fetch whole: the new one is found by its subject.
    imap.select("INBOX", readonly=True)
    typ, data = imap.search(None, "SUBJECT", '"after-the-backup"')
    inbox = ["after-the-backup"] * len(data[0].split())
    print(json.dumps({"before": before, "list": listed, "lsub": subscribed,
                      "restored": restored, "inbox": sorted(inbox)}))
    imap.logout()


{"setup": setup, "session": session}[sys.argv[1]]()
