#!/usr/bin/python3
# Prints the reference's backup_status() for STORAGE_ROOT=argv[1] as JSON,
# for comparison with `mailbackup status --json`.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup  # noqa: E402

print(json.dumps(backup.backup_status({"STORAGE_ROOT": sys.argv[1]})))
