"""A local server speaking Backblaze B2's native API, for the tests.

Written from B2's API documentation (versions v2, v3 and v4 of the calls
below), for the calls that duplicity's b2 backend (through b2sdk) and
mailbackup make:

  b2_authorize_account (GET, HTTP Basic auth with KEYID:KEY)
  b2_list_buckets, b2_create_bucket
  b2_get_upload_url, b2_upload_file (X-Bz-File-Name percent-encoded,
      X-Bz-Content-Sha1 as hex, hex_digits_at_end, unverified:HEX or do_not_verify)
  b2_list_file_names, b2_list_file_versions (startFileName, startFileId,
      maxFileCount, prefix, delimiter; paginated with nextFileName/nextFileId)
  b2_get_file_info, b2_hide_file, b2_delete_file_version
  /file/BUCKET/NAME (GET and HEAD, with Range), b2_download_file_by_id

Calls take a JSON body (POST) or query parameters (GET). Errors are JSON
{"status", "code", "message"} with B2's codes: 400 bad_request /
invalid_bucket_name / duplicate_bucket_name / file_not_present, 401
unauthorized / bad_auth_token, 404 not_found.

  b2_server.py --port PORT [--key KEYID:KEY[:BUCKET]]... [--bucket NAME]...
               [--page-limit N]

A key without BUCKET is a master key (every capability, every bucket); a key
with BUCKET is an application key restricted to that bucket, which may not
list other buckets nor create any. --bucket makes an empty bucket.

Not part of B2, for the tests only: GET /_test/buckets -> {"NAME": {"FILE
NAME": size}} of every bucket (live files, hidden ones left out), POST
/_test/put with {"BUCKET": {"FILE NAME": size}} puts files of zeros, and GET
/_test/log -> every request line the server was sent.
"""
import argparse
import base64
import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT_ID = "a1b2c3d4e5f6"
ALL_CAPABILITIES = [
    "listKeys", "writeKeys", "deleteKeys", "listAllBucketNames", "listBuckets", "readBuckets",
    "writeBuckets", "deleteBuckets", "readBucketEncryption", "writeBucketEncryption",
    "readBucketRetentions", "writeBucketRetentions", "readFileRetentions", "writeFileRetentions",
    "readFileLegalHolds", "writeFileLegalHolds", "bypassGovernance", "listFiles", "readFiles",
    "shareFiles", "writeFiles", "deleteFiles",
]
BUCKET_CAPABILITIES = ["listBuckets", "listAllBucketNames", "readBuckets", "listFiles",
                       "readFiles", "shareFiles", "writeFiles", "deleteFiles"]
# Every upload is one b2_upload_file: no large-file calls here.
RECOMMENDED_PART_SIZE = 100 * 1000 * 1000
MINIMUM_PART_SIZE = 5 * 1000 * 1000


class B2Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class State:
    def __init__(self, keys, buckets):
        self.lock = threading.Lock()
        self.keys = keys  # key id -> (key, bucket name or None)
        self.tokens = {}  # token -> key id
        self.upload_tokens = {}  # token -> bucket id
        self.buckets = {}  # name -> bucket
        self.ids = itertools.count(1)
        self.log = []
        for name in buckets:
            self.create_bucket(name, "allPrivate")

    def new_id(self, prefix):
        return "%s%024x" % (prefix, next(self.ids))

    def create_bucket(self, name, bucket_type):
        bucket = {"bucketId": self.new_id("b"), "bucketName": name, "bucketType": bucket_type,
                  "files": []}
        self.buckets[name] = bucket
        return bucket

    def bucket_by_id(self, bucket_id):
        for b in self.buckets.values():
            if b["bucketId"] == bucket_id:
                return b
        raise B2Error(400, "bad_request", "Invalid bucketId: %s" % bucket_id)


def bucket_json(bucket):
    return {
        "accountId": ACCOUNT_ID, "bucketId": bucket["bucketId"],
        "bucketName": bucket["bucketName"], "bucketType": bucket["bucketType"],
        "bucketInfo": {}, "corsRules": [], "lifecycleRules": [], "options": [], "revision": 1,
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": True,
                                        "value": {"mode": "none"}},
        "fileLockConfiguration": {"isClientAuthorizedToRead": True,
                                  "value": {"defaultRetention": {"mode": None, "period": None},
                                            "isFileLockEnabled": False}},
        "replicationConfiguration": {"isClientAuthorizedToRead": True, "value": None},
    }


def file_json(bucket, version):
    out = {k: v for k, v in version.items() if k != "data"}
    out.update(accountId=ACCOUNT_ID, bucketId=bucket["bucketId"],
               serverSideEncryption={"mode": "none"},
               fileRetention={"isClientAuthorizedToRead": True, "value": {"mode": None}},
               legalHold={"isClientAuthorizedToRead": True, "value": None})
    return out


def listing(bucket, params, versions, page_limit=None):
    """One page of b2_list_file_names (versions False) or b2_list_file_versions.
    B2 may answer with fewer names than maxFileCount: `page_limit` does."""
    start = params.get("startFileName") or ""
    start_id = params.get("startFileId")
    count = int(params.get("maxFileCount") or 100)
    if count == 0:
        count = 100
    if not 1 <= count <= 10000:
        raise B2Error(400, "bad_request", "maxFileCount out of range: %d" % count)
    prefix = params.get("prefix") or ""
    delimiter = params.get("delimiter")
    # Newest version first within a name, names in byte order.
    ordered = sorted(bucket["files"], key=lambda v: (v["fileName"].encode(), -v["uploadTimestamp"]))
    if not versions:
        seen, live = set(), []
        for v in ordered:
            if v["fileName"] not in seen:
                seen.add(v["fileName"])
                if v["action"] == "upload":
                    live.append(v)
        ordered = live
    out, folders = [], set()
    for v in ordered:
        name = v["fileName"]
        if not name.startswith(prefix) or name.encode() < start.encode():
            continue
        if versions and start_id and name == start and v["fileId"] < start_id:
            continue
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                folder = name[:cut + len(delimiter)]
                if folder not in folders and folder.encode() >= start.encode():
                    folders.add(folder)
                    out.append(({"action": "folder", "fileName": folder, "fileId": None,
                                 "contentLength": 0, "contentSha1": None, "contentType": None,
                                 "fileInfo": {}, "uploadTimestamp": 0}, None))
                continue
        out.append((v, name))
    if page_limit:
        count = min(count, page_limit)
    page, rest = out[:count], out[count:]
    files = [file_json(bucket, v) if v.get("action") != "folder" else
             dict(v, accountId=ACCOUNT_ID, bucketId=bucket["bucketId"]) for v, _ in page]
    result = {"files": files, "nextFileName": rest[0][0]["fileName"] if rest else None}
    if versions:
        result["nextFileId"] = rest[0][0]["fileId"] if rest else None
    return result


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "b2-test-server"

    def log_message(self, *args):
        pass

    @property
    def state(self):
        return self.server.state

    def send_json(self, status, body, head=False):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=0, no-cache, no-store")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def params(self, raw):
        query = urllib.parse.urlsplit(self.path).query
        params = dict(urllib.parse.parse_qsl(query))
        if raw.strip():
            try:
                params.update(json.loads(raw))
            except ValueError:
                raise B2Error(400, "bad_request", "The request body is not JSON")
        return params

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_HEAD(self):
        self.handle_request("HEAD")

    def handle_request(self, method):
        with self.state.lock:
            self.state.log.append("%s %s" % (method, self.path))
        raw = self.body() if method == "POST" else b""
        try:
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/_test/"):
                self.test_body = raw
                return self.test_call(path)
            if path.startswith("/file/"):
                return self.download_by_name(path, method == "HEAD")
            parts = path.split("/")
            if len(parts) < 4 or parts[1] != "b2api" or parts[2] not in ("v2", "v3", "v4"):
                raise B2Error(404, "not_found", "No such API: %s" % path)
            version, call = parts[2], parts[3]
            if call == "b2_authorize_account":
                return self.send_json(200, self.authorize(version))
            if call == "b2_upload_file":
                return self.send_json(200, self.upload(parts[4] if len(parts) > 4 else "", raw))
            if call == "b2_download_file_by_id":
                return self.download_by_id(method == "HEAD")
            handler = CALLS.get(call)
            if handler is None:
                raise B2Error(404, "not_found", "No such API: %s" % call)
            key_id = self.account_key()
            with self.state.lock:
                result = handler(self, key_id, self.params(raw), version)
            self.send_json(200, result)
        except B2Error as e:
            self.send_json(e.status, {"status": e.status, "code": e.code, "message": e.message},
                           head=method == "HEAD")

    def test_call(self, path):
        with self.state.lock:
            if path == "/_test/buckets":
                body = {name: {v["fileName"]: v["contentLength"] for v in
                               listing(b, {"maxFileCount": 10000}, False)["files"]}
                        for name, b in self.state.buckets.items()}
            elif path == "/_test/put":
                # {"BUCKET": {"NAME": size}}: files of zero bytes.
                for name, files in json.loads(self.test_body).items():
                    bucket = self.state.buckets[name]
                    for file_name, size in files.items():
                        data = bytes(size)
                        bucket["files"].append({
                            "fileId": self.state.new_id("f"), "fileName": file_name,
                            "action": "upload", "contentLength": size,
                            "contentSha1": hashlib.sha1(data).hexdigest(),
                            "contentType": "application/octet-stream", "fileInfo": {},
                            "uploadTimestamp": int(time.time() * 1000), "data": data})
                body = {}
            elif path == "/_test/log":
                body = list(self.state.log)
            else:
                raise B2Error(404, "not_found", path)
        self.send_json(200, body)

    # --- authorization

    def authorize(self, version):
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            raise B2Error(401, "bad_auth_token", "Missing Basic authorization")
        try:
            key_id, key = base64.b64decode(header[6:]).decode().split(":", 1)
        except (ValueError, UnicodeDecodeError):
            raise B2Error(400, "bad_request", "Malformed Basic authorization")
        known = self.state.keys.get(key_id)
        if known is None or known[0] != key:
            raise B2Error(401, "unauthorized", "")
        token = "4_" + hashlib.sha1(("%s%f" % (key_id, time.time())).encode()).hexdigest()
        base = "http://%s:%d" % self.server.server_address[:2]
        with self.state.lock:
            self.state.tokens[token] = key_id
            bucket = self.state.buckets.get(known[1]) if known[1] else None
        capabilities = BUCKET_CAPABILITIES if known[1] else ALL_CAPABILITIES
        bucket_id = bucket["bucketId"] if bucket else None
        bucket_name = known[1]
        urls = {"apiUrl": base, "downloadUrl": base, "s3ApiUrl": base,
                "recommendedPartSize": RECOMMENDED_PART_SIZE,
                "absoluteMinimumPartSize": MINIMUM_PART_SIZE}
        common = {"accountId": ACCOUNT_ID, "authorizationToken": token}
        if version == "v2":
            return dict(common, **urls, allowed={
                "bucketId": bucket_id, "bucketName": bucket_name,
                "capabilities": capabilities, "namePrefix": None})
        storage = dict(urls, infoType="storageApi")
        if version == "v3":
            storage.update(bucketId=bucket_id, bucketName=bucket_name,
                           capabilities=capabilities, namePrefix=None)
        else:
            buckets = [{"id": bucket_id, "name": bucket_name}] if known[1] else None
            storage["allowed"] = {"buckets": buckets, "capabilities": capabilities,
                                  "namePrefix": None}
        return dict(common, apiInfo={"storageApi": storage})

    def account_key(self):
        token = self.headers.get("Authorization") or ""
        with self.state.lock:
            key_id = self.state.tokens.get(token)
        if key_id is None:
            raise B2Error(401, "bad_auth_token", "Invalid authorization token")
        return key_id

    def allowed_bucket(self, key_id):
        """The bucket name a key is restricted to, or None."""
        return self.state.keys[key_id][1]

    def check_bucket(self, key_id, bucket):
        only = self.allowed_bucket(key_id)
        if only is not None and only != bucket["bucketName"]:
            raise B2Error(401, "unauthorized", "not entitled to bucket %s" % bucket["bucketId"])

    # --- buckets

    def list_buckets(self, key_id, p, _version):
        only = self.allowed_bucket(key_id)
        if p.get("accountId") != ACCOUNT_ID:
            raise B2Error(400, "bad_request", "accountId invalid")
        if only is not None and p.get("bucketName") != only and not (
                p.get("bucketId") and p["bucketId"] == self.state.buckets.get(only, {})
                .get("bucketId")):
            raise B2Error(401, "unauthorized", "application key is restricted to bucket %s" % only)
        found = [b for b in self.state.buckets.values()
                 if p.get("bucketName") in (None, b["bucketName"])
                 and p.get("bucketId") in (None, b["bucketId"])]
        return {"buckets": [bucket_json(b) for b in sorted(found, key=lambda b: b["bucketName"])]}

    def create_bucket(self, key_id, p, _version):
        if self.allowed_bucket(key_id) is not None:
            raise B2Error(401, "unauthorized", "application key may not create buckets")
        name = p.get("bucketName") or ""
        if not (6 <= len(name) <= 63 and all(c.isascii() and (c.isalnum() or c == "-")
                                             for c in name) and not name.startswith("b2-")):
            raise B2Error(400, "invalid_bucket_name", "Invalid bucket name: %s" % name)
        if name in self.state.buckets:
            raise B2Error(400, "duplicate_bucket_name", "Bucket name is already in use.")
        if p.get("bucketType") not in ("allPrivate", "allPublic"):
            raise B2Error(400, "bad_request", "bucketType must be allPrivate or allPublic")
        return bucket_json(self.state.create_bucket(name, p["bucketType"]))

    # --- files

    def bucket_for(self, key_id, p):
        bucket = self.state.bucket_by_id(p.get("bucketId"))
        self.check_bucket(key_id, bucket)
        return bucket

    def list_file_names(self, key_id, p, _version):
        return listing(self.bucket_for(key_id, p), p, False, self.server.page_limit)

    def list_file_versions(self, key_id, p, _version):
        return listing(self.bucket_for(key_id, p), p, True, self.server.page_limit)

    def get_upload_url(self, key_id, p, version):
        bucket = self.bucket_for(key_id, p)
        token = "2_" + self.state.new_id("u")
        self.state.upload_tokens[token] = bucket["bucketId"]
        base = "http://%s:%d" % self.server.server_address[:2]
        return {"bucketId": bucket["bucketId"], "authorizationToken": token,
                "uploadUrl": "%s/b2api/%s/b2_upload_file/%s" % (base, version,
                                                                 bucket["bucketId"])}

    def upload(self, bucket_id, data):
        token = self.headers.get("Authorization") or ""
        with self.state.lock:
            if self.state.upload_tokens.get(token) != bucket_id:
                raise B2Error(401, "bad_auth_token", "Invalid upload authorization token")
        name = urllib.parse.unquote_plus(self.headers.get("X-Bz-File-Name") or "")
        if not name or len(name.encode()) > 1024 or name.startswith("/") or "//" in name:
            raise B2Error(400, "bad_request", "Bad file name: %r" % name)
        sha1 = self.headers.get("X-Bz-Content-Sha1") or ""
        if sha1 == "hex_digits_at_end":
            data, sha1 = data[:-40], data[-40:].decode()
        elif sha1.startswith("unverified:"):
            sha1 = sha1[len("unverified:"):]
        elif sha1 == "do_not_verify":
            sha1 = hashlib.sha1(data).hexdigest()
        if hashlib.sha1(data).hexdigest() != sha1.lower():
            raise B2Error(400, "bad_request", "Checksum did not match data received")
        content_type = self.headers.get("Content-Type") or "b2/x-auto"
        if content_type == "b2/x-auto":
            content_type = "application/octet-stream"
        info = {k[len("X-Bz-Info-"):].lower(): urllib.parse.unquote_plus(v)
                for k, v in self.headers.items() if k.lower().startswith("x-bz-info-")}
        with self.state.lock:
            bucket = self.state.bucket_by_id(bucket_id)
            version = {"fileId": self.state.new_id("f"), "fileName": name, "action": "upload",
                       "contentLength": len(data), "contentSha1": sha1.lower(),
                       "contentType": content_type, "fileInfo": info,
                       "uploadTimestamp": int(time.time() * 1000), "data": data}
            bucket["files"].append(version)
            return file_json(bucket, version)

    def find_version(self, file_id):
        for bucket in self.state.buckets.values():
            for v in bucket["files"]:
                if v["fileId"] == file_id:
                    return bucket, v
        raise B2Error(400, "file_not_present", "File not present: %s" % file_id)

    def get_file_info(self, key_id, p, _version):
        bucket, v = self.find_version(p.get("fileId"))
        self.check_bucket(key_id, bucket)
        return file_json(bucket, v)

    def delete_file_version(self, key_id, p, _version):
        bucket, v = self.find_version(p.get("fileId"))
        self.check_bucket(key_id, bucket)
        if v["fileName"] != p.get("fileName"):
            raise B2Error(400, "file_not_present", "File not present: %s" % p.get("fileName"))
        bucket["files"].remove(v)
        return {"fileId": v["fileId"], "fileName": v["fileName"]}

    def hide_file(self, key_id, p, _version):
        bucket = self.bucket_for(key_id, p)
        name = p.get("fileName") or ""
        if not any(v["fileName"] == name for v in bucket["files"]):
            raise B2Error(400, "no_such_file", "File not present: %s" % name)
        version = {"fileId": self.state.new_id("f"), "fileName": name, "action": "hide",
                   "contentLength": 0, "contentSha1": "none", "contentType": None,
                   "fileInfo": {}, "uploadTimestamp": int(time.time() * 1000), "data": b""}
        bucket["files"].append(version)
        return file_json(bucket, version)

    # --- downloads

    def download_by_name(self, path, head):
        _, _, bucket_name, quoted = path.split("/", 3)
        name = urllib.parse.unquote(quoted)
        key_id = self.account_key()
        with self.state.lock:
            bucket = self.state.buckets.get(bucket_name)
            if bucket is None:
                raise B2Error(404, "not_found", "Bucket %s does not exist" % bucket_name)
            self.check_bucket(key_id, bucket)
            live = listing(bucket, {"prefix": name, "maxFileCount": 1}, False)["files"]
            if not live or live[0]["fileName"] != name:
                raise B2Error(404, "not_found", "File with such name does not exist.")
            _, v = self.find_version(live[0]["fileId"])
        self.send_file(v, head)

    def download_by_id(self, head):
        key_id = self.account_key()
        file_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)).get(
            "fileId")
        with self.state.lock:
            try:
                bucket, v = self.find_version(file_id)
            except B2Error:
                raise B2Error(404, "not_found", "File with such id does not exist.")
            self.check_bucket(key_id, bucket)
        self.send_file(v, head)

    def send_file(self, v, head):
        data, status = v["data"], 200
        byte_range = self.headers.get("Range")
        first, last = 0, len(data) - 1
        if byte_range and byte_range.startswith("bytes="):
            a, _, b = byte_range[6:].partition("-")
            first = int(a) if a else max(0, len(data) - int(b))
            last = min(int(b), len(data) - 1) if a and b else len(data) - 1
            status = 206
        body = data[first:last + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", v["contentType"])
        self.send_header("x-bz-file-id", v["fileId"])
        self.send_header("x-bz-file-name", urllib.parse.quote(v["fileName"], safe="/"))
        self.send_header("x-bz-content-sha1", v["contentSha1"])
        self.send_header("x-bz-upload-timestamp", str(v["uploadTimestamp"]))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, len(data)))
        for k, value in v["fileInfo"].items():
            self.send_header("x-bz-info-" + k, urllib.parse.quote(value, safe=""))
        self.end_headers()
        if not head:
            self.wfile.write(body)


CALLS = {
    "b2_list_buckets": Handler.list_buckets,
    "b2_create_bucket": Handler.create_bucket,
    "b2_list_file_names": Handler.list_file_names,
    "b2_list_file_versions": Handler.list_file_versions,
    "b2_get_upload_url": Handler.get_upload_url,
    "b2_get_file_info": Handler.get_file_info,
    "b2_delete_file_version": Handler.delete_file_version,
    "b2_hide_file": Handler.hide_file,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", action="append", default=[],
                        help="KEYID:KEY (a master key) or KEYID:KEY:BUCKET")
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--page-limit", type=int, default=None,
                        help="answer listings with at most this many names")
    args = parser.parse_args()
    keys = {}
    for k in args.key:
        key_id, key, *bucket = k.split(":", 2)
        keys[key_id] = (key, bucket[0] if bucket else None)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = State(keys, args.bucket)
    server.page_limit = args.page_limit
    server.serve_forever()


if __name__ == "__main__":
    main()
