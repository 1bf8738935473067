"""Holds tests/tools/b2_server.py to the official B2 client, b2sdk: starts
the server, then uploads, lists (across pages, with a prefix), downloads,
hides and deletes with b2sdk, and checks what each returns. Run it with the
Python that has the b2sdk to check: Debian's python3-b2sdk (1.x, public API
v1 or v2) and b2sdk 2.x from PyPI (API v3) both.

  PYTHON b2_server_check.py
"""
import hashlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

try:
    from b2sdk.v2 import B2Api, InMemoryAccountInfo
    from b2sdk.v2.exception import NonExistentBucket, InvalidAuthToken, Unauthorized, FileNotPresent
except ImportError:
    from b2sdk.v1 import B2Api, InMemoryAccountInfo
    from b2sdk.v1.exception import NonExistentBucket, InvalidAuthToken, Unauthorized, FileNotPresent

try:
    from b2sdk import __version__ as VERSION
except ImportError:
    from b2sdk.version import VERSION

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server():
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "b2_server.py"), "--port",
                               str(port), "--key", "master:MasterKey/+=", "--key",
                               "restricted:AppKey:only-this", "--bucket", "only-this"])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return server, "http://127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.05)
    sys.exit("b2_server.py did not start")


def download(bucket, name):
    out = io.BytesIO()
    downloaded = bucket.download_file_by_name(name)
    if hasattr(downloaded, "save"):
        downloaded.save(out)
    else:  # b2sdk.v1 takes a destination
        from b2sdk.v1 import DownloadDestBytes
        dest = DownloadDestBytes()
        bucket.download_file_by_name(name, dest)
        return dest.get_bytes_written()
    return out.getvalue()


def names(bucket, folder="", recursive=True):
    return [fv.file_name for fv, _ in bucket.ls(folder, recursive=recursive)]


def check(realm):
    api = B2Api(InMemoryAccountInfo())
    try:
        api.authorize_account(realm, "master", "wrong")
        sys.exit("a wrong key was accepted")
    except (Unauthorized, InvalidAuthToken) as e:
        assert e.code in ("unauthorized", "bad_auth_token"), e.code
    api.authorize_account(realm, "master", "MasterKey/+=")
    try:
        api.get_bucket_by_name("nowhere-bucket")
        sys.exit("a missing bucket was found")
    except NonExistentBucket:
        pass
    bucket = api.create_bucket("test-bucket", "allPrivate")
    assert api.get_bucket_by_name("test-bucket").id_ == bucket.id_
    files = {"box/duplicity-full.20260101T000000Z.vol%d.difftar.gpg" % i:
             hashlib.sha256(b"%d" % i).digest() * (i + 1) for i in range(1, 8)}
    files["other/x y+z.txt"] = b"a name with a space and a plus"
    for name, data in files.items():
        info = bucket.upload_bytes(data, name)
        assert info.size == len(data) and info.file_name == name, info
    # Pages of two: the listing follows nextFileName.
    listed = [fv for fv, _ in bucket.ls("box", recursive=True, fetch_count=2)]
    assert [fv.file_name for fv in listed] == sorted(n for n in files if n.startswith("box/")), \
        [fv.file_name for fv in listed]
    assert all(fv.size == len(files[fv.file_name]) for fv in listed)
    folders = [folder for _, folder in bucket.ls("", recursive=False)]
    assert folders == ["box/", "other/"], folders
    assert sorted(f for f, _ in [(fv.file_name, 0) for fv, _ in bucket.ls("", recursive=True)]) \
        == sorted(files)
    for name, data in files.items():
        assert download(bucket, name) == data, name
    info = bucket.get_file_info_by_name("other/x y+z.txt")
    assert info.size == len(files["other/x y+z.txt"]), info
    victim = listed[0]
    bucket.delete_file_version(victim.id_, victim.file_name)
    assert victim.file_name not in names(bucket, "box")
    try:
        download(bucket, victim.file_name)
        sys.exit("a deleted file was downloaded")
    except FileNotPresent:
        pass
    bucket.hide_file(listed[1].file_name)
    assert listed[1].file_name not in names(bucket, "box")
    # An application key restricted to one bucket: no other bucket, no new one.
    api2 = B2Api(InMemoryAccountInfo())
    api2.authorize_account(realm, "restricted", "AppKey")
    own = api2.get_bucket_by_name("only-this")
    own.upload_bytes(b"mine", "f")
    assert download(own, "f") == b"mine"
    try:
        api2.create_bucket("another-bucket", "allPrivate")
        sys.exit("a restricted key created a bucket")
    except Exception as e:  # b2sdk raises by code: unauthorized, or its own check
        assert "nauthorized" in repr(e) or "restricted" in repr(e).lower(), repr(e)


def main():
    server, url = start_server()
    try:
        check(url)
    finally:
        server.terminate()
        server.wait()
    print("b2sdk %s: upload, listing, download, hide and delete work" % VERSION)


main()
