#!/usr/bin/env python3
"""Arranges moto for functions/aws/tests/ecs.rs with boto3, independently of the code under
test, and prints what it made as one JSON line.

  ecs_setup.py URL users
      Must be the server's first requests: moto runs with INITIAL_NO_AUTH_ACTION_COUNT=3, so
      it checks SigV4 signatures and IAM actions from the fourth request on. Creates `admin`
      (everything) and `node` (only the ingest task role's ECS/EC2/CloudWatch actions) and
      prints their access keys.
  ecs_setup.py URL task KEY_ID SECRET CLUSTER {eip|none}
      As `admin`: a cluster, an awsvpc Fargate task definition and service, and one task run
      in the service's group (moto's RunTask makes the ENI); with `eip`, an Elastic IP
      associated with that ENI. Prints the task ARN, cluster ARN, ENI, private and public IP.
"""
import json
import sys

from moto_client import client  # this folder (the script's own) is first on sys.path


def user(iam, name, actions):
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def users(url):
    # The three unauthenticated requests: create, allow, key.
    admin = user(client("iam", url, "test", "test"), "admin", "*")
    # The ingest task role's statements on these services (infra/template.yaml,
    # IngestTaskRole). moto matches actions only, not resources or conditions, and names
    # CloudWatch's actions after its signing name (`monitoring:`), where IAM says
    # `cloudwatch:`: both spellings, for the one action.
    node = user(
        client("iam", url, admin["id"], admin["secret"]),
        "node",
        [
            "ecs:DescribeTasks",
            "ec2:DescribeNetworkInterfaces",
            "cloudwatch:PutMetricData",
            "monitoring:PutMetricData",
        ],
    )
    print(json.dumps({"admin": admin, "node": node}))


def task(url, key_id, secret, cluster, public):
    ec2 = client("ec2", url, key_id, secret)
    ecs = client("ecs", url, key_id, secret)
    # ARNs as Fargate writes them today: task/{cluster}/{id}.
    ecs.put_account_setting(name="taskLongArnFormat", value="enabled")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    network = {
        "awsvpcConfiguration": {
            "subnets": [subnet],
            "securityGroups": [group],
            "assignPublicIp": "ENABLED",
        }
    }
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family=cluster,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        # moto needs container-level cpu and memory to place a task.
        containerDefinitions=[
            {"name": "ingest", "image": "rill-ingest:latest", "essential": True,
             "cpu": 1024, "memory": 2048}
        ],
    )
    ecs.create_service(
        cluster=cluster,
        serviceName=cluster,
        taskDefinition=cluster,
        desiredCount=0,
        launchType="FARGATE",
        networkConfiguration=network,
    )
    # moto's services start no tasks: run one in the service's group, as ECS would.
    started = ecs.run_task(
        cluster=cluster,
        taskDefinition=cluster,
        launchType="FARGATE",
        group="service:" + cluster,
        networkConfiguration=network,
    )["tasks"][0]
    details = {d["name"]: d["value"] for a in started["attachments"] for d in a["details"]}
    out = {
        "taskArn": started["taskArn"],
        "clusterArn": started["clusterArn"],
        "eni": details["networkInterfaceId"],
        "privateIp": details["privateIPv4Address"],
        "publicIp": None,
    }
    # moto ignores assignPublicIp: the ENI gets a public address only from an Elastic IP.
    if public == "eip":
        address = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=address["AllocationId"], NetworkInterfaceId=out["eni"])
        out["publicIp"] = address["PublicIp"]
    print(json.dumps(out))


if __name__ == "__main__":
    url, command = sys.argv[1], sys.argv[2]
    if command == "users":
        users(url)
    elif command == "task":
        task(url, *sys.argv[3:7])
    else:
        sys.exit(f"unknown command {command}")
