#!/usr/bin/python3
# Prints "NAME SIZE" for the files of N daily backups (a full one every 10
# days; 8 volumes, a manifest and a signature file each): 10 files a backup.
import datetime
import sys

n = int(sys.argv[1])
t = datetime.datetime(2020, 1, 1, 3, 0, 0)
stamp = lambda t: t.strftime("%Y%m%dT%H%M%SZ")
prev = None
for i in range(n):
    if i % 10 == 0:
        base = "duplicity-full.%s" % stamp(t)
        print("duplicity-full-signatures.%s.sigtar.gpg %d" % (stamp(t), 700 + i % 50))
    else:
        base = "duplicity-inc.%s.to.%s" % (stamp(prev), stamp(t))
        print("duplicity-new-signatures.%s.to.%s.sigtar.gpg %d" % (stamp(prev), stamp(t), 70 + i % 50))
    print("%s.manifest.gpg %d" % (base, 300 + i % 7))
    for vol in range(1, 9):
        print("%s.vol%d.difftar.gpg %d" % (base, vol, 1000 + (i * vol) % 997))
    prev = t
    t += datetime.timedelta(days=1)
