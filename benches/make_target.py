#!/usr/bin/python3
# Fills DIR with the files of 30 chains of 30 backups (one full, 29
# increments), 132 files a backup (130 volumes, a manifest, a signature
# file): 118,800 sparse files of 1 KB, the shape of a large target.
import datetime
import os
import sys

dir = sys.argv[1]
os.makedirs(dir, exist_ok=True)
t = datetime.datetime(2025, 1, 1, 3, 0, 0)
stamp = lambda t: t.strftime("%Y%m%dT%H%M%SZ")


def touch(name):
    with open(os.path.join(dir, name), "wb") as f:
        f.truncate(1024)


for chain in range(30):
    prev = None
    for n in range(30):
        if prev is None:
            base = "duplicity-full.%s" % stamp(t)
            touch("duplicity-full-signatures.%s.sigtar.gpg" % stamp(t))
        else:
            base = "duplicity-inc.%s.to.%s" % (stamp(prev), stamp(t))
            touch("duplicity-new-signatures.%s.to.%s.sigtar.gpg" % (stamp(prev), stamp(t)))
        touch(base + ".manifest.gpg")
        for vol in range(1, 131):
            touch("%s.vol%d.difftar.gpg" % (base, vol))
        prev = t
        t += datetime.timedelta(hours=7)
