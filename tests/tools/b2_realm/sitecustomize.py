"""For the tests only: points b2sdk's "production" realm, which duplicity's
b2 backend authorizes against, at the local server in $B2_TEST_REALM_URL
(tests/tools/b2_server.py). With $B2_TEST_ARGV_LOG set, also appends the
argv of every Python program started with this directory on PYTHONPATH
(duplicity), one JSON list a line, for the tests that look for secrets.

b2sdk 1.x keeps the realms in b2sdk.raw_api.REALM_URLS, 2.x in
b2sdk._internal.raw_api.REALM_URLS; its session looks the realm up in that
same dict at each authorization, so changing the dict is enough.
"""
import json
import os
import sys

_url = os.environ.get("B2_TEST_REALM_URL")
if _url:
    try:
        from b2sdk._internal import raw_api as _raw_api
    except ImportError:
        try:
            from b2sdk import raw_api as _raw_api
        except ImportError:
            _raw_api = None
    if _raw_api is not None:
        _raw_api.REALM_URLS["production"] = _url

_log = os.environ.get("B2_TEST_ARGV_LOG")
if _log:
    with open(_log, "a") as _f:
        _f.write(json.dumps(sys.argv) + "\n")
