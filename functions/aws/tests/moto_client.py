"""boto3 clients on the test's moto server, shared by the setup scripts of this folder."""
import boto3

REGION = "us-east-1"


def client(service, url, key_id, secret):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
