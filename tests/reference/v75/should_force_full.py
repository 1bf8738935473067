#!/usr/bin/python3
# Prints Mail-in-a-Box v75's should_force_full() (true/false) for
# STORAGE_ROOT=argv[1] (sets from duplicity, or with --listed-sets as in
# `status.py --listed-sets`). The weekday
# comes from date.today(), so run it under faketime.
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import status  # noqa: E402

if "--listed-sets" in sys.argv[2:]:
    status.use_listed_sets()

env = {"STORAGE_ROOT": sys.argv[1]}
print(json.dumps(status.backup.should_force_full(status.backup.get_backup_config(env), env)))
