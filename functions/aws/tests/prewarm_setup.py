#!/usr/bin/env python3
"""Arranges and inspects moto for functions/aws/tests/prewarm.rs with boto3, independently
of the code under test, and prints one JSON line.

  prewarm_setup.py URL fleet KEY_ID SECRET CLUSTER
      A cluster with a Fargate service of the same name, registered as a scalable target
      (min 1, max 10) as the stack does. Prints its resource id.
  prewarm_setup.py URL group KEY_ID SECRET NAME
      A schedule group.
  prewarm_setup.py URL schedule KEY_ID SECRET GROUP NAME
      GetSchedule, or {"missing": true}.
  prewarm_setup.py URL target KEY_ID SECRET RESOURCE_ID
      The scalable target as DescribeScalableTargets shows it.
"""
import json
import sys

from moto_client import client  # this folder (the script's own) is first on sys.path


def fleet(url, key_id, secret, cluster):
    ec2 = client("ec2", url, key_id, secret)
    ecs = client("ecs", url, key_id, secret)
    aas = client("application-autoscaling", url, key_id, secret)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    security_group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family=cluster,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="4096",
        memory="8192",
        containerDefinitions=[{"name": "ingest", "image": "rill-ingest:latest", "essential": True,
                               "cpu": 4096, "memory": 8192}],
    )
    ecs.create_service(
        cluster=cluster,
        serviceName=cluster,
        taskDefinition=cluster,
        # moto's services start no tasks anyway.
        desiredCount=0,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [security_group]}},
    )
    resource_id = f"service/{cluster}/{cluster}"
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=resource_id,
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=10,
    )
    print(json.dumps({"resourceId": resource_id}))


def group(url, key_id, secret, name):
    arn = client("scheduler", url, key_id, secret).create_schedule_group(Name=name)
    print(json.dumps({"arn": arn["ScheduleGroupArn"]}))


def schedule(url, key_id, secret, group_name, name):
    scheduler = client("scheduler", url, key_id, secret)
    try:
        got = scheduler.get_schedule(GroupName=group_name, Name=name)
    except scheduler.exceptions.ResourceNotFoundException:
        print(json.dumps({"missing": True}))
        return
    got.pop("ResponseMetadata", None)
    print(json.dumps(got, default=str))


def target(url, key_id, secret, resource_id):
    aas = client("application-autoscaling", url, key_id, secret)
    found = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource_id])
    print(json.dumps(found["ScalableTargets"][0], default=str))


if __name__ == "__main__":
    url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    commands = {"fleet": fleet, "group": group, "schedule": schedule,
                "target": target}
    if command not in commands:
        sys.exit(f"unknown command {command}")
    commands[command](url, *args)
