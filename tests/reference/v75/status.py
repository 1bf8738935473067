#!/usr/bin/python3
# Prints Mail-in-a-Box v75's backup_status() for STORAGE_ROOT=argv[1] as JSON.
# With --listed-sets, the sets come from the target's file names instead of
# duplicity (see README.md).
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "stubs"))
sys.path.insert(0, HERE)
import backup  # noqa: E402

NAME = re.compile(
    r"duplicity-(full|inc\.(?P<start>\d+T\d+Z)\.to)\.(?P<date>\d+T\d+Z)\.(?P<part>vol\d+\.difftar|manifest)\."
)


def listed_sets(directory):
    """The ' full T N enc' / ' inc T N enc' lines of collection-status."""
    sets = {}
    for fn in os.listdir(directory):
        m = NAME.match(fn)
        if not m:
            continue
        s = sets.setdefault(m["date"], {"start": m["start"], "volumes": 0, "manifest": False})
        if m["part"] == "manifest":
            s["manifest"] = True
        else:
            s["volumes"] += 1
    lines, chained = [], set()
    for date in sorted(sets):
        s = sets[date]
        if not s["manifest"]:
            continue
        if s["start"] is None or s["start"] in chained:
            chained.add(date)
            kind = "full" if s["start"] is None else "inc"
            lines.append(" %s %s %d enc" % (kind, date, s["volumes"]))
    return "\n".join(lines) + "\n"


def use_listed_sets():
    real_shell = backup.shell

    def shell(method, cmd_args, env=None, **kwargs):
        if "collection-status" in cmd_args:
            target = cmd_args[-1]
            assert target.startswith("file://"), target
            return 0, listed_sets(target[len("file://"):])
        return real_shell(method, cmd_args, env, **kwargs)

    backup.shell = shell


if __name__ == "__main__":
    if "--listed-sets" in sys.argv[2:]:
        use_listed_sets()
    print(json.dumps(backup.backup_status({"STORAGE_ROOT": sys.argv[1]})))
