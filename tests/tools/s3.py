"""Sets up the local S3 server (moto) for the tests, with boto3.

  s3.py URL bootstrap          -> prints "KEY_ID SECRET" of a new user allowed everything
  s3.py URL KEY SECRET mb BUCKET
  s3.py URL KEY SECRET put BUCKET   (stdin: "KEY SIZE" lines; objects of SIZE bytes)
  s3.py URL KEY SECRET keys BUCKET  -> prints every key
"""
import concurrent.futures
import json
import sys

import boto3


def client(service, url, key, secret):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def main():
    url = sys.argv[1]
    if sys.argv[2] == "bootstrap":
        # The server counts these as the unauthenticated actions it allows.
        iam = client("iam", url, "bootstrap", "bootstrap")
        iam.create_user(UserName="backup")
        k = iam.create_access_key(UserName="backup")["AccessKey"]
        iam.put_user_policy(UserName="backup", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        print(k["AccessKeyId"], k["SecretAccessKey"])
        return
    key, secret, command, bucket = sys.argv[2:6]
    s3 = client("s3", url, key, secret)
    if command == "mb":
        s3.create_bucket(Bucket=bucket)
    elif command == "put":
        objects = [line.rsplit(" ", 1) for line in sys.stdin.read().splitlines() if line]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda o: s3.put_object(Bucket=bucket, Key=o[0], Body=b"x" * int(o[1])),
                          objects))
    elif command == "keys":
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                print(o["Key"])
    else:
        sys.exit("unknown command " + command)


main()
