#!/usr/bin/env python3
"""Arranges moto's Secrets Manager for functions/aws/tests/media_signing.rs with boto3,
independently of the code under test, and prints one JSON line.

  secrets_setup.py URL KEY_ID SECRET NAME FILE
      A secret NAME whose string is the contents of FILE. Prints its ARN.
"""
import json
import sys

from moto_client import client  # this folder (the script's own) is first on sys.path


def main():
    url, key_id, secret, name, path = sys.argv[1:6]
    with open(path, encoding="ascii") as f:
        value = f.read()
    made = client("secretsmanager", url, key_id, secret).create_secret(
        Name=name, SecretString=value
    )
    print(json.dumps({"arn": made["ARN"]}))


if __name__ == "__main__":
    main()
