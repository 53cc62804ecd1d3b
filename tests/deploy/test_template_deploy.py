#!/usr/bin/env python3
"""Deploy test without AWS: infra/template.yaml through the SAM transform into moto's
CloudFormation, then the AWS APIs (moto's) show what the stack created.

    .venv/bin/python tests/deploy/test_template_deploy.py [template]   (scripts/test.sh runs it)

Three parts, in three files (the checks run for each of three parameter sets):

* On moto (in process, `mock_aws`): the SAM-expanded template (scripts/sam_transform.py) is
  created with `create_stack` in three parameter sets, and the ECS cluster, service and task
  definition, the NLB listeners and target groups, the IAM roles, the VPC, subnets, security
  group and endpoints, the ECR repository, the table, the bucket and the functions' URLs are
  read back through the service APIs (`m_` checks, here).
* On the template itself, what moto cannot show because it drops or ignores it (moto's
  ECS keeps neither the service's network configuration nor its load balancers, nor the
  task's CPU, network mode or roles; its ELBv2 makes every load balancer an ALB and keeps
  no target group attributes; it skips Application Auto Scaling): stop timeout, public IPs,
  the security group's rules, the task role's least privilege, the service attached to the
  1935 target group, the NLB type, the scaling policy. Conditions are evaluated for each
  parameter set, as CloudFormation would (`t_` checks, here).
* Sign-in (defaults: the Cognito user pool; an external issuer; no identity provider, as on
  LocalStack): the JWT authorizer, CORS preflight, issuer/audience/JWKS, the user pool and
  its helper, the outputs for the web app: tests/deploy/template_deploy_signin.py, whose
  checks run after this file's.

The harness (the expanded template with its conditions evaluated, what is changed in it
before moto sees it and why, create_stack, the parameter sets, the runner) is
tests/deploy/template_deploy_harness.py. TEMPLATE_CHECKS and MOTO_CHECKS below are this
file's checks (collected by name prefix, `checks()`) followed by sign-in's.

Exits non-zero if any check fails. Needs the venv from scripts/setup.sh.
"""

import ast
import json
import os
import re
import sys
import time
import warnings

import template_deploy_harness as harness  # first: dummy credentials, scripts/ on sys.path
import template_deploy_signin as signin
import boto3
import sam_transform
from template_deploy_harness import (
    IMAGE, PARAMETER_SETS, REGION, ROOT, Runner, Template, as_list, checks, function, granted_by,
    moto_scenario, statements, target)

# The task role may grant these actions on Resource "*", and only these: AWS has no
# resource-level permission for them (see the comment on IngestTaskRole).
STAR_RESOURCE_ALLOWED = {"ec2:DescribeNetworkInterfaces", "cloudwatch:PutMetricData"}

# ------------------------------------------------------------- checks on the template


def node_env_names():
    """Environment variables rill-ingest reads: every variable name handed to a reader
    (`var.addr("RTMP_ADDR", ..)`, `or("TABLE_NAME", ..)`, `env::var("X")`) in the node's
    configuration (`ingest-node/src/config.rs`, read once at start) and rill-aws's settings."""
    names = set()
    pattern = re.compile(r'\(\s*"([A-Z][A-Z0-9_]{2,})"')
    for path in ("ingest-node/src/config.rs", "ingest-node/src/main.rs", "ingest-node/src/run.rs",
                 "functions/aws/src/config.rs"):
        full = os.path.join(ROOT, path)
        if os.path.exists(full):
            names.update(pattern.findall(open(full).read()))
    names.add("RUST_LOG")  # tracing_subscriber's EnvFilter::try_from_default_env (main.rs)
    return names


def t_nlb_is_an_internet_facing_network_load_balancer(t, p):
    name, lb = t.one("AWS::ElasticLoadBalancingV2::LoadBalancer")
    props = lb["Properties"]
    assert props["Type"] == "network", props.get("Type")
    assert props["Scheme"] == "internet-facing"
    subnets = [target(s) for s in props["Subnets"]]
    azs = [t.resources[s]["Properties"]["AvailabilityZone"] for s in subnets]
    assert len(subnets) == 2 and azs[0] != azs[1], azs
    for i, az in enumerate(azs):
        assert az == {"Fn::Select": [i, {"Fn::GetAZs": ""}]}, az


def listeners(t):
    return {r["Properties"]["Port"]: r for r in
            t.of_type("AWS::ElasticLoadBalancingV2::Listener").values()}


def t_rtmp_listener_forwards_tcp_1935_to_ip_targets(t, p):
    ls = listeners(t)
    assert 1935 in ls, sorted(ls)
    props = ls[1935]["Properties"]
    assert props["Protocol"] == "TCP"
    tg_name = target(props["DefaultActions"][0]["TargetGroupArn"])
    tg = t.resources[tg_name]["Properties"]
    assert (tg["Protocol"], tg["Port"], tg["TargetType"], tg["HealthCheckProtocol"]) == \
        ("TCP", 1935, "ip", "TCP"), tg
    attrs = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}
    assert attrs["preserve_client_ip.enabled"] == "true", attrs


def t_rtmps_listener_exists_only_with_a_certificate(t, p):
    ls = listeners(t)
    if p.get("IngestCertificateArn"):
        props = ls[443]["Properties"]
        assert props["Protocol"] == "TLS"
        assert props["Certificates"] == [{"CertificateArn": p["IngestCertificateArn"]}]
        assert target(props["DefaultActions"][0]["TargetGroupArn"]) == \
            target(ls[1935]["Properties"]["DefaultActions"][0]["TargetGroupArn"])
    else:
        assert 443 not in ls, "TLS listener without a certificate"


def t_whip_goes_through_the_router_never_the_nlb(t, p):
    ls = listeners(t)
    _, svc = t.one("AWS::ECS::Service")
    ports = {lb["ContainerPort"] for lb in svc["Properties"]["LoadBalancers"]}
    assert 8889 not in ls and ports == {1935}, (sorted(ls), ports)
    assert not any(tg["Properties"]["Port"] == 8889 for tg in
                   t.of_type("AWS::ElasticLoadBalancingV2::TargetGroup").values())


def whip_router(t):
    (fn,) = [f for f in t.rill_functions().values()
             if f["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-whip-router"}]
    return fn["Properties"]


def t_whip_router_runs_in_the_ingest_vpc_with_its_own_security_group(t, p):
    props = whip_router(t)
    vpc = props["VpcConfig"]
    assert [target(s) for s in vpc["SubnetIds"]] == ["IngestPublicSubnetA", "IngestPublicSubnetB"], vpc
    assert [target(g) for g in vpc["SecurityGroupIds"]] == ["WhipRouterSecurityGroup"], vpc
    # Three forwards of 5 s fit, under the HTTP API's 30 s integration limit.
    assert 15 < props["Timeout"] <= 29, props["Timeout"]
    sg = t.resources["WhipRouterSecurityGroup"]["Properties"]
    assert target(sg["VpcId"]) == "IngestVpc"
    egress = {(r["IpProtocol"], r["FromPort"], json.dumps(r["CidrIp"], sort_keys=True))
              for r in sg["SecurityGroupEgress"]}
    assert egress == {("tcp", 8889, '{"Fn::GetAtt": ["IngestVpc", "CidrBlock"]}'),
                      ("tcp", 443, '"0.0.0.0/0"')}, egress
    assert "SecurityGroupIngress" not in sg, "nothing connects to the router's ENIs"


def t_whip_router_reads_the_lease_and_the_registry_only(t, p):
    role_name = target(whip_router(t)["Role"])
    role = t.resources[role_name]["Properties"]
    managed = [m["Fn::Sub"] if isinstance(m, dict) else m for m in role["ManagedPolicyArns"]]
    assert any(m.endswith("service-role/AWSLambdaVPCAccessExecutionRole") for m in managed), managed
    granted = {}
    for pol in role["Policies"]:
        for st in as_list(pol["PolicyDocument"]["Statement"]):
            for a in as_list(st["Action"]):
                granted.setdefault(a, []).extend(as_list(st["Resource"]))
    assert set(granted) == {"dynamodb:GetItem", "dynamodb:Query"}, sorted(granted)
    assert {"Fn::Sub": "${StreamsTable.Arn}/index/byStatus"} in granted["dynamodb:Query"]


def t_whip_routes_are_on_the_http_api_without_an_authorizer(t, p):
    api = t.resources["HttpApi"]["Properties"]
    paths = api["Body"]["paths"]
    want = {("/whip/{streamId}", "post"), ("/whip/{streamId}/{sessionId}", "patch"),
            ("/whip/{streamId}/{sessionId}", "delete")}
    for path, method in want:
        op = paths[path][method]
        assert "WhipRouterFunction" in json.dumps(op["x-amazon-apigateway-integration"]["uri"]), op
        # The stream key is the bearer: no JWT authorizer (SAM's explicit NONE).
        assert op.get("security") == [{"NONE": []}], (path, method, op.get("security"))
    cors = api["Body"]["x-amazon-apigateway-cors"]
    exposed = {h.lower() for h in cors["exposeHeaders"]}
    assert {"location", "etag", "link"} <= exposed, exposed
    assert "if-match" in {h.lower() for h in cors["allowHeaders"]}


def _key_matches(rule, value):
    """One Lambda filter rule (a list of alternatives) against a key, for the subset of the
    filter language the template uses: exact strings, prefix, anything-but."""
    for alt in rule:
        if isinstance(alt, str) and alt == value:
            return True
        if isinstance(alt, dict) and "prefix" in alt and value.startswith(alt["prefix"]):
            return True
        if isinstance(alt, dict) and "anything-but" in alt and value not in alt["anything-but"]:
            return True
    return False


def t_each_table_stream_function_gets_only_its_items(t, p):
    patterns = {}
    events = {}
    for esm in t.of_type("AWS::Lambda::EventSourceMapping").values():
        (f,) = esm["Properties"]["FilterCriteria"]["Filters"]
        name = esm["Properties"]["FunctionName"]["Ref"]
        pattern = json.loads(f["Pattern"])
        patterns[name] = pattern["dynamodb"]["Keys"]
        events[name] = pattern.get("eventName")
    assert set(patterns) == {"EventsFanoutFunction", "EventsPresenceFunction",
                             "WebhooksDispatchFunction"}, patterns
    # Webhooks are fed from feed appends only: new EVENT# items, nothing else.
    assert events["WebhooksDispatchFunction"] == ["INSERT"], events
    hooks = patterns["WebhooksDispatchFunction"]
    assert _key_matches(hooks["pk"]["S"], "STREAM#s") and _key_matches(hooks["sk"]["S"], "EVENT#000000000001")
    for sk in ["META", "FEED", "CHAT#01H", "CONN#c", "METRIC#x"]:
        assert not _key_matches(hooks["sk"]["S"], sk), sk
    assert not _key_matches(hooks["pk"]["S"], "WEBHOOK#w"), "cursor writes invoke nothing"

    def gets(function, pk, sk):
        keys = patterns[function]
        return _key_matches(keys["pk"]["S"], pk) and _key_matches(keys["sk"]["S"], sk)

    fanout = ["META", "CHAT#01H", "REACT#01H", "Q#01H", "METRIC#2026-01-01T00:00:00.000Z"]
    # The audience's items: presence (CONN#) and the analytics folded with it.
    audience = ["META", "CONN#c", "SESSION#c", "VIEWER#c", "CHAT#01H", "REACT#01H"]
    nobody = ["LEASE", "QVOTE#q#u", "RATE#u", "BAN#u", "MOD#u", "MIN#2026-01-01T00:00:00.000Z"]
    for sk in fanout:
        assert gets("EventsFanoutFunction", "STREAM#s", sk), sk
    for sk in audience:
        assert gets("EventsPresenceFunction", "STREAM#s", sk), sk
    for sk in ["Q#01H", "METRIC#2026-01-01T00:00:00.000Z", "EVENT#000000000001", "FEED"]:
        assert not gets("EventsPresenceFunction", "STREAM#s", sk), sk
    for sk in ["CONN#c", "VIEWER#c", "SESSION#c"]:
        assert not gets("EventsFanoutFunction", "STREAM#s", sk), "a crowd's joins and heartbeats skip events-fanout"
    for sk in nobody:
        assert not gets("EventsFanoutFunction", "STREAM#s", sk), sk
        assert not gets("EventsPresenceFunction", "STREAM#s", sk), sk
    # Node heartbeats and the sockets' reverse lookups invoke nothing.
    for pk, sk in [("NODE#n", "META"), ("CONN#c", "META"), ("CHANNEL#c", "META")]:
        assert not gets("EventsFanoutFunction", pk, sk) and not gets("EventsPresenceFunction", pk, sk)


def t_webhook_runs_are_started_by_the_dispatcher_and_re_enabling_only(t, p):
    """webhooks-deliver runs asynchronously, long enough for its retry window; only the
    dispatcher and webhooks-update may invoke it; no function is told to reach local
    targets (WEBHOOK_ALLOW_LOCAL is the local gateway's)."""
    deliver = function(t, "webhooks-deliver")
    assert deliver["Timeout"] >= 300 + 10 + 30, deliver["Timeout"]
    invokers = set()
    for name, r in t.of_type("AWS::IAM::Role").items():
        for st in (st for pol in r["Properties"].get("Policies", [])
                   for st in as_list(pol["PolicyDocument"]["Statement"])):
            if "lambda:InvokeFunction" in as_list(st["Action"]) and \
                    "WebhooksDeliverFunction" in json.dumps(st["Resource"]):
                invokers.add(name)
    assert invokers == {"WebhooksDispatchFunctionRole", "WebhooksUpdateFunctionRole"}, invokers
    for name in ["webhooks-dispatch", "webhooks-update"]:
        env = function(t, name)["Environment"]["Variables"]
        assert env["WEBHOOK_DELIVER_FUNCTION"] == {"Ref": "WebhooksDeliverFunction"}, name
    for name, r in t.rill_functions().items():
        assert "WEBHOOK_ALLOW_LOCAL" not in r["Properties"].get("Environment", {}).get("Variables", {}), name


def t_only_the_dispatcher_puts_events_on_the_bus(t, p):
    putters = set()
    for name, r in t.of_type("AWS::IAM::Role").items():
        for st in (st for pol in r["Properties"].get("Policies", [])
                   for st in as_list(pol["PolicyDocument"]["Statement"])):
            if "events:PutEvents" in as_list(st["Action"]):
                putters.add(name)
    assert putters == {"WebhooksDispatchFunctionRole"}, putters


def t_service_is_attached_to_the_1935_target_group(t, p):
    name, svc = t.one("AWS::ECS::Service")
    rtmp_tg = target(listeners(t)[1935]["Properties"]["DefaultActions"][0]["TargetGroupArn"])
    lbs = svc["Properties"]["LoadBalancers"]
    assert {"ContainerName": "ingest", "ContainerPort": 1935,
            "TargetGroupArn": {"Ref": rtmp_tg}} in lbs, lbs
    assert t.resources[rtmp_tg]["Properties"]["Port"] == 1935
    # ECS refuses a target group that no listener uses yet.
    assert "IngestRtmpListener" in as_list(t.raw["Resources"][name].get("DependsOn", []))


def t_service_runs_fargate_tasks_with_public_ips(t, p):
    _, svc = t.one("AWS::ECS::Service")
    props = svc["Properties"]
    assert props["LaunchType"] == "FARGATE"
    net = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["AssignPublicIp"] == "ENABLED"
    assert len(net["Subnets"]) == 2
    want = p["IngestMinTasks"] if p.get("IngestImageUri") else "0"
    assert str(props["DesiredCount"]) == want, (props["DesiredCount"], want)
    assert t.raw["Parameters"]["IngestMinTasks"]["MinValue"] >= 1


def t_task_definition_stop_timeout_ports_size(t, p):
    _, td = t.one("AWS::ECS::TaskDefinition")
    props = td["Properties"]
    assert props["RequiresCompatibilities"] == ["FARGATE"] and props["NetworkMode"] == "awsvpc"
    assert t.raw["Parameters"]["IngestCpu"]["Default"] == 4096
    assert t.raw["Parameters"]["IngestMemory"]["Default"] == 8192
    assert str(props["Cpu"]) == t.params["IngestCpu"] and str(props["Memory"]) == t.params["IngestMemory"]
    (c,) = props["ContainerDefinitions"]
    assert 0 < c["StopTimeout"] <= 120, c["StopTimeout"]
    ports = {(m["ContainerPort"], m["Protocol"]) for m in c["PortMappings"]}
    assert ports == {(1935, "tcp"), (8889, "tcp"), (8890, "udp")}, ports
    assert "/healthz" in " ".join(c["HealthCheck"]["Command"])
    assert c["LogConfiguration"]["LogDriver"] == "awslogs"
    assert c["Image"] == (IMAGE if p.get("IngestImageUri") else
                          {"Fn::Sub": "${IngestRepository.RepositoryUri}:latest"}), c["Image"]
    assert target(props["TaskRoleArn"]) == "IngestTaskRole"
    assert target(props["ExecutionRoleArn"]) == "IngestExecutionRole"


def t_task_environment_is_what_the_node_reads(t, p):
    _, td = t.one("AWS::ECS::TaskDefinition")
    env = {e["Name"]: e["Value"] for e in td["Properties"]["ContainerDefinitions"][0]["Environment"]}
    unknown = set(env) - node_env_names()
    assert not unknown, f"set but never read by rill-ingest: {sorted(unknown)}"
    assert env["TABLE_NAME"] == {"Ref": "StreamsTable"}
    assert env["BUCKET_NAME"] == {"Ref": "MediaBucket"}
    assert "HLS_BASE_URL" in env
    for var, port in (("RTMP_ADDR", 1935), ("INGEST_HTTP_ADDR", 8889), ("WEBRTC_UDP_ADDR", 8890)):
        assert env[var] == f"0.0.0.0:{port}", (var, env[var])


def t_members_media_needs_a_grant_from_the_key_group_or_is_refused(t, p):
    """members/* (members-only streams): CloudFront checks a grant from the key group when
    the stack has a key pair, else a viewer-request function refuses every request; the
    behaviours come before any that would match a members/ path less strictly."""
    signing = t.condition("HasMediaSigning")
    assert signing == bool(p.get("HlsSigningPublicKey") and p.get("HlsSigningKeySecretArn"))
    config = t.resources["MediaDistribution"]["Properties"]["DistributionConfig"]
    patterns = [b["PathPattern"] for b in config["CacheBehaviors"]]
    assert patterns[:2] == ["members/*.m3u8", "members/*"], patterns
    for b in config["CacheBehaviors"][:2]:
        assert b["ViewerProtocolPolicy"] == "https-only"
        if signing:
            assert b["TrustedKeyGroups"] == [{"Ref": "MediaSigningKeyGroup"}], b
            assert "FunctionAssociations" not in b, b
        else:
            assert "TrustedKeyGroups" not in b, b
            assert b["FunctionAssociations"] == [{
                "EventType": "viewer-request",
                "FunctionARN": {"Fn::GetAtt": ["MembersRefusedFunction", "FunctionARN"]}}], b
    # The grant is no part of the cache key: members share cached objects.
    for policy in ("PlaylistCachePolicy", "MediaCachePolicy"):
        params = t.resources[policy]["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        assert params["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
        assert params["CookiesConfig"] == {"CookieBehavior": "none"}
    if signing:
        key = t.resources["MediaSigningPublicKey"]["Properties"]["PublicKeyConfig"]
        assert key["EncodedKey"] == p["HlsSigningPublicKey"]
        group = t.resources["MediaSigningKeyGroup"]["Properties"]["KeyGroupConfig"]
        assert group["Items"] == [{"Ref": "MediaSigningPublicKey"}]
        assert "MembersRefusedFunction" not in t.resources
    else:
        assert "MediaSigningPublicKey" not in t.resources
        code = t.resources["MembersRefusedFunction"]["Properties"]["FunctionCode"]
        assert "statusCode: 403" in code, code


def t_streams_hls_reads_the_signing_key_from_its_secret_only(t, p):
    """The private key is in Secrets Manager, never in the template or an environment:
    streams-hls gets the secret's ARN and may read that one secret; no other function may."""
    env = function(t, "streams-hls")["Environment"]["Variables"]
    signing = t.condition("HasMediaSigning")
    if signing:
        assert env["HLS_KEY_PAIR_ID"] == {"Ref": "MediaSigningPublicKey"}
        assert env["HLS_SIGNING_KEY_SECRET"] == p["HlsSigningKeySecretArn"]
    else:
        assert (env["HLS_KEY_PAIR_ID"], env["HLS_SIGNING_KEY_SECRET"]) == ("", "")
    for name, r in t.rill_functions().items():
        assert "HLS_SIGNING_KEY" not in r["Properties"].get("Environment", {}).get("Variables", {}), name
    readers = set()
    for name, r in t.of_type("AWS::IAM::Role").items():
        inline = (st for pol in r["Properties"].get("Policies", [])
                  for st in as_list(pol["PolicyDocument"]["Statement"]))
        for st in inline:
            if "secretsmanager:GetSecretValue" in as_list(st["Action"]):
                # SAM's policy template writes the ARN as Fn::Sub ['${secretArn}', {...}].
                resource = st["Resource"]
                if isinstance(resource, dict) and "Fn::Sub" in resource:
                    text, values = resource["Fn::Sub"]
                    resource = values[text.strip("${}")]
                assert resource == p["HlsSigningKeySecretArn"], (name, st)
                readers.add(name)
    assert readers == ({"StreamsHlsFunctionRole"} if signing else set()), readers


def t_security_group_opens_rtmp_and_udp_media_and_node_http_to_the_router_only(t, p):
    assert set(t.of_type("AWS::EC2::SecurityGroup")) == {"IngestTaskSecurityGroup", "WhipRouterSecurityGroup"}
    sg = t.resources["IngestTaskSecurityGroup"]
    rules = {(r["IpProtocol"], r["FromPort"], r["ToPort"],
              json.dumps(r.get("CidrIp", r.get("SourceSecurityGroupId")), sort_keys=True))
             for r in sg["Properties"]["SecurityGroupIngress"]}
    assert rules == {
        ("tcp", 1935, 1935, '"0.0.0.0/0"'),
        ("udp", 8890, 8890, '"0.0.0.0/0"'),
        ("tcp", 8889, 8889, '{"Ref": "WhipRouterSecurityGroup"}'),
    }, rules


def t_task_role_is_least_privilege(t, p):
    role = t.resources["IngestTaskRole"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]
    granted = {}
    for s in statements(role):
        assert s["Effect"] == "Allow"
        actions = as_list(s["Action"])
        resources = as_list(s["Resource"])
        for a in actions:
            assert "*" not in a, f"wildcard action {a}"
        if "*" in resources:
            assert set(actions) <= STAR_RESOURCE_ALLOWED and len(resources) == 1, \
                f"Resource '*' for {actions}: only {sorted(STAR_RESOURCE_ALLOWED)} may have it"
        for a in actions:
            granted[a] = resources
        if "cloudwatch:PutMetricData" in actions:
            assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Rill/Ingest"}}
    media = [{"Fn::Sub": "${MediaBucket.Arn}/live/*"}, {"Fn::Sub": "${MediaBucket.Arn}/members/*"}]
    assert granted["s3:PutObject"] == media
    assert granted["s3:DeleteObject"] == media
    assert granted["dynamodb:UpdateItem"] == [
        {"Fn::GetAtt": ["StreamsTable", "Arn"]}, {"Fn::Sub": "${StreamsTable.Arn}/index/*"}]
    own_tasks = [{"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}"
                             ":task/${IngestCluster}/*"}]
    assert granted["ecs:UpdateTaskProtection"] == own_tasks
    assert granted["ecs:DescribeTasks"] == own_tasks
    assert granted["ec2:DescribeNetworkInterfaces"] == ["*"]
    assert not any(a.startswith(("iam:", "sts:")) for a in granted)


def t_execution_role_pulls_from_the_repository_and_writes_the_log_group(t, p):
    granted = {}
    for s in statements(t.resources["IngestExecutionRole"]):
        for a in as_list(s["Action"]):
            granted[a] = as_list(s["Resource"])
    assert granted.pop("ecr:GetAuthorizationToken") == ["*"]  # account-wide by design
    assert granted.pop("ecr:BatchGetImage") == [{"Fn::GetAtt": ["IngestRepository", "Arn"]}]
    assert granted.pop("logs:PutLogEvents") == [{"Fn::Sub": "${IngestLogGroup.Arn}:*"}]
    assert all("*" != r for rs in granted.values() for r in rs), granted


def t_scaling_tracks_utilisation_at_0_6_with_a_minimum_of_1(t, p):
    targets = t.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    policies = t.of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
    if not p.get("IngestImageUri"):
        assert not targets and not policies, "scaling a service that has no image"
        return
    (tgt,) = targets.values()
    props = tgt["Properties"]
    assert props["ScalableDimension"] == "ecs:service:DesiredCount"
    assert props["MinCapacity"] == p["IngestMinTasks"] and int(props["MinCapacity"]) >= 1
    assert props["MaxCapacity"] == t.params["IngestMaxTasks"]
    (pol,) = policies.values()
    cfg = pol["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert pol["Properties"]["PolicyType"] == "TargetTrackingScaling"
    assert cfg["TargetValue"] == 0.6
    m = cfg["CustomizedMetricSpecification"]
    assert (m["Namespace"], m["MetricName"], m["Statistic"]) == ("Rill/Ingest", "Utilisation", "Average")


def t_vpc_has_public_routes_and_gateway_endpoints(t, p):
    endpoints = t.of_type("AWS::EC2::VPCEndpoint").values()
    services = sorted(e["Properties"]["ServiceName"]["Fn::Sub"] for e in endpoints)
    assert services == ["com.amazonaws.${AWS::Region}.dynamodb", "com.amazonaws.${AWS::Region}.s3"]
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints)
    (route,) = t.of_type("AWS::EC2::Route").values()
    assert route["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
    assert target(route["Properties"]["GatewayId"]) == "IngestInternetGateway"
    assert len(t.of_type("AWS::EC2::SubnetRouteTableAssociation")) == 2


def function_grants(t, name):
    role = t.resources[target(function(t, name)["Role"])]
    granted = {}
    for pol in role["Properties"].get("Policies", []):
        for s in as_list(pol["PolicyDocument"]["Statement"]):
            for a in as_list(s["Action"]):
                assert "*" not in a, f"{name}: wildcard action {a}"
                for r in as_list(s["Resource"]):
                    assert r != "*", f"{name}: Resource '*' for {a}"
                    granted.setdefault(a, []).append((json.dumps(r, sort_keys=True), s.get("Condition")))
    return granted


PREWARM = ["IngestPrewarmFunction", "IngestPrewarmScheduleGroup", "IngestPrewarmSchedulerRole",
           "IngestPrewarmFunctionReconcile"]
PREWARM_SCHEDULES = json.dumps({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:"
                                "${AWS::AccountId}:schedule/${IngestPrewarmScheduleGroup}/prewarm-*"})


def t_prewarm_exists_only_with_the_ingest_tier(t, p):
    env = function(t, "streams-create")["Environment"]["Variables"]
    if not p.get("IngestImageUri"):
        assert not [n for n in PREWARM if n in t.resources], "pre-warm without an ingest service"
        assert [env[k] for k in ("PREWARM_FUNCTION_ARN", "PREWARM_ROLE_ARN",
                                 "PREWARM_SCHEDULE_GROUP")] == ["", "", ""], env
        granted = function_grants(t, "streams-create")
        assert not any(PREWARM_SCHEDULES == r for a, rs in granted.items() for r, _ in rs
                       if a.startswith("scheduler:")), granted
        assert "IngestPrewarmSchedulerRole" not in json.dumps(granted.get("iam:PassRole", []))
        return
    assert all(n in t.resources for n in PREWARM), [n for n in PREWARM if n not in t.resources]
    assert env["PREWARM_FUNCTION_ARN"] == {"Fn::GetAtt": ["IngestPrewarmFunction", "Arn"]}
    assert env["PREWARM_ROLE_ARN"] == {"Fn::GetAtt": ["IngestPrewarmSchedulerRole", "Arn"]}
    assert env["PREWARM_SCHEDULE_GROUP"] == {"Ref": "IngestPrewarmScheduleGroup"}
    fn = function(t, "ingest-prewarm")["Environment"]["Variables"]
    assert fn["INGEST_MIN_TASKS"] == p["IngestMinTasks"]
    assert fn["INGEST_MAX_TASKS"] == t.params["IngestMaxTasks"]
    assert fn["INGEST_TASK_CPU"] == t.params["IngestCpu"]
    assert target(fn["INGEST_CLUSTER"]) == "IngestCluster"
    assert fn["INGEST_SERVICE"] == {"Fn::GetAtt": ["IngestService", "Name"]}


REMIND_SCHEDULES = json.dumps({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:"
                               "${AWS::AccountId}:schedule/${NotificationsScheduleGroup}/remind-*"})


def pass_role(role):
    return (json.dumps({"Fn::GetAtt": [role, "Arn"]}),
            {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}})


def t_stream_functions_manage_only_their_own_schedules(t, p):
    """Reminders always; pre-warm with the ingest tier: each stream function may touch only
    the schedules named for it in their own groups, and pass only their own roles."""
    expected = {
        "streams-create": {"scheduler:CreateSchedule", "scheduler:UpdateSchedule"},
        "streams-update": {"scheduler:CreateSchedule", "scheduler:UpdateSchedule",
                           "scheduler:DeleteSchedule"},
        "streams-start": {"scheduler:DeleteSchedule"},
        "streams-cancel": {"scheduler:DeleteSchedule"},
    }
    groups = [REMIND_SCHEDULES] + ([PREWARM_SCHEDULES] if p.get("IngestImageUri") else [])
    roles = ["NotificationsSchedulerRole"] + (
        ["IngestPrewarmSchedulerRole"] if p.get("IngestImageUri") else [])
    for name, actions in expected.items():
        granted = function_grants(t, name)
        scheduler = {a for a in granted if a.startswith("scheduler:")}
        assert scheduler == actions, (name, sorted(scheduler))
        for a in scheduler:
            assert sorted(r for r, _ in granted[a]) == sorted(groups), (name, a, granted[a])
            assert all(c is None for _, c in granted[a]), (name, a)
        passing = granted.get("iam:PassRole", [])
        if "scheduler:CreateSchedule" in actions:
            assert sorted(passing, key=str) == sorted((pass_role(r) for r in roles), key=str), \
                (name, passing)
        else:
            assert not passing, (name, passing)
        env = function(t, name)["Environment"]["Variables"]
        assert env["REMINDER_FUNCTION_ARN"] == {"Fn::GetAtt": ["NotificationsSendFunction", "Arn"]}
        assert env["REMINDER_ROLE_ARN"] == {"Fn::GetAtt": ["NotificationsSchedulerRole", "Arn"]}
        assert env["REMINDER_SCHEDULE_GROUP"] == {"Ref": "NotificationsScheduleGroup"}
    for fn in t.rill_functions().values():
        name = fn["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        if name not in expected:
            assert not any(a.startswith("scheduler:") for a in function_grants(t, name)), name


def t_only_reminder_schedules_and_the_dispatcher_invoke_notifications_send(t, p):
    role = t.resources["NotificationsSchedulerRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["NotificationsScheduleGroup", "Arn"]}
    assert granted_by(role) == {"lambda:InvokeFunction": [
        (json.dumps({"Fn::GetAtt": ["NotificationsSendFunction", "Arn"]}), None)]}
    remind = function(t, "notifications-send")
    assert remind.get("Events") in (None, {}), "invoked only by its schedules and the dispatcher"
    invokers = set()
    for name, r in t.of_type("AWS::IAM::Role").items():
        for st in (st for pol in r["Properties"].get("Policies", [])
                   for st in as_list(pol["PolicyDocument"]["Statement"])):
            if "lambda:InvokeFunction" in as_list(st["Action"]) and \
                    "NotificationsSendFunction" in json.dumps(st["Resource"]):
                invokers.add(name)
    assert invokers == {"NotificationsSchedulerRole", "WebhooksDispatchFunctionRole"}, invokers
    env = function(t, "webhooks-dispatch")["Environment"]["Variables"]
    assert env["NOTIFY_FUNCTION"] == {"Ref": "NotificationsSendFunction"}, env
    granted = function_grants(t, "notifications-send")
    assert not any(a.startswith(("scheduler:", "iam:", "lambda:")) for a in granted), granted


def t_prewarm_function_may_set_the_ingest_minimum_and_read_scheduled_streams_only(t, p):
    if not p.get("IngestImageUri"):
        return
    granted = function_grants(t, "ingest-prewarm")
    assert set(granted) == {"dynamodb:Query", "application-autoscaling:RegisterScalableTarget",
                            "ecs:DescribeServices", "ecs:UpdateService"}, sorted(granted)
    assert granted["dynamodb:Query"] == [
        (json.dumps({"Fn::Sub": "${StreamsTable.Arn}/index/byStatus"}), None)]
    ((resource, condition),) = granted["application-autoscaling:RegisterScalableTarget"]
    assert json.loads(resource)["Fn::Sub"].endswith(":scalable-target/*"), resource
    assert condition == {"StringEquals": {"aws:ResourceTag/rill:prewarm": {"Ref": "AWS::StackName"}}}
    tags = t.resources["IngestScalableTarget"]["Properties"]["Tags"]
    assert {"Key": "rill:prewarm", "Value": {"Ref": "AWS::StackName"}} in tags, tags
    service = json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}"
                                     ":service/${IngestCluster}/${IngestService.Name}"})
    assert granted["ecs:UpdateService"] == [(service, None)]


def t_scheduler_role_only_invokes_the_prewarm_function(t, p):
    if not p.get("IngestImageUri"):
        return
    role = t.resources["IngestPrewarmSchedulerRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["IngestPrewarmScheduleGroup", "Arn"]}
    assert granted_by(role) == {"lambda:InvokeFunction": [
        (json.dumps({"Fn::GetAtt": ["IngestPrewarmFunction", "Arn"]}), None)]}
    sched = t.resources["IngestPrewarmFunctionReconcile"]["Properties"]
    assert sched["ScheduleExpression"] == "rate(5 minutes)"
    assert sched["GroupName"] == {"Ref": "IngestPrewarmScheduleGroup"}
    assert sched["Target"]["Arn"] == {"Fn::GetAtt": ["IngestPrewarmFunction", "Arn"]}
    assert sched["Target"]["RoleArn"] == {"Fn::GetAtt": ["IngestPrewarmSchedulerRole", "Arn"]}
    assert json.loads(sched["Target"]["Input"]) == {}


def t_no_placeholder_urls(t, p):
    for name, param in t.raw["Parameters"].items():
        assert "example.com" not in str(param.get("Default", "")), name
    for name, fn in t.rill_functions().items():
        env = fn["Properties"]["Environment"]["Variables"]
        want_rtmp = {"Fn::Sub": "rtmp://${IngestLoadBalancer.DNSName}:1935/live"}
        assert env["RTMP_PUBLIC_URL"] == want_rtmp, (name, env["RTMP_PUBLIC_URL"])
        # "api": the whip-router on the HTTP API that served the request (app.rs).
        want_whip = p.get("IngestPublicUrl") or "api"
        assert env["INGEST_PUBLIC_URL"] == want_whip, (name, env["INGEST_PUBLIC_URL"])


# Every check on the template: this module's, then sign-in's (template_deploy_signin.py).
TEMPLATE_CHECKS = checks(globals(), "t_") + signin.TEMPLATE_CHECKS

# ------------------------------------------------------------------ checks on moto


def m_stack_outputs_give_the_ingest_urls(ctx):
    out, p = ctx["outputs"], ctx["params"]
    lb = ctx["lb"]["DNSName"]
    assert out["RtmpUrl"] == f"rtmp://{lb}:1935/live", out["RtmpUrl"]
    # moto has no API Gateway v2: the HttpApi id is a stand-in in the default case.
    api = f"https://{ctx['api_id']}.execute-api.{REGION}.amazonaws.com"
    assert out["WhipUrl"] == (p.get("IngestPublicUrl") or api), out["WhipUrl"]
    repo = boto3.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryUri"] for r in repo] == [out["IngestRepositoryUri"]]
    assert out["IngestClusterName"] == f"{ctx['stack']}-ingest"


def m_functions_hand_out_the_nlb_urls(ctx):
    lam = boto3.client("lambda")
    lb, p = ctx["lb"]["DNSName"], ctx["params"]
    fns = lam.list_functions()["Functions"]
    assert len(fns) >= 30, len(fns)
    env = lam.get_function_configuration(FunctionName=f"{ctx['stack']}-streams-create")["Environment"]["Variables"]
    assert env["RTMP_PUBLIC_URL"] == f"rtmp://{lb}:1935/live"
    assert env["INGEST_PUBLIC_URL"] == (p.get("IngestPublicUrl") or "api")
    router = lam.get_function_configuration(FunctionName=f"{ctx['stack']}-whip-router")
    assert router["Timeout"] == 20
    assert sorted(router["VpcConfig"]["SubnetIds"]) == sorted(ctx["subnets"]), router["VpcConfig"]
    assert router["VpcConfig"]["SecurityGroupIds"] == [ctx["res"]["WhipRouterSecurityGroup"]]


def m_feed_events_go_to_the_stacks_event_bus(ctx):
    """The bus exists under the stack's name and the dispatcher is told its name."""
    name = f"{ctx['stack']}-events"
    assert boto3.client("events").describe_event_bus(Name=name)["Name"] == name
    env = boto3.client("lambda").get_function_configuration(
        FunctionName=f"{ctx['stack']}-webhooks-dispatch")["Environment"]["Variables"]
    assert env["EVENT_BUS_NAME"] == name, env


def m_ecs_cluster_service_and_task_definition(ctx):
    ecs = boto3.client("ecs")
    cluster = f"{ctx['stack']}-ingest"
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["status"] == "ACTIVE"
    (svc,) = ecs.describe_services(cluster=cluster, services=[cluster])["services"]
    want = int(ctx["params"].get("IngestMinTasks", 0)) if ctx["params"].get("IngestImageUri") else 0
    assert svc["desiredCount"] == want, svc["desiredCount"]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert td["family"] == cluster and td["memory"] == "8192"
    (c,) = td["containerDefinitions"]
    assert c["name"] == "ingest" and c["stopTimeout"] == 120
    if ctx["params"].get("IngestImageUri"):
        assert c["image"] == IMAGE
    ports = {(m["containerPort"], m["protocol"]) for m in c["portMappings"]}
    assert ports == {(1935, "tcp"), (8889, "tcp"), (8890, "udp")}
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["TABLE_NAME"] == ctx["table"] and env["BUCKET_NAME"] == ctx["bucket"]
    assert c["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{ctx['stack']}/ingest"
    groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{ctx['stack']}/")
    assert [g["logGroupName"] for g in groups["logGroups"]] == [f"/ecs/{ctx['stack']}/ingest"]


def m_load_balancer_listeners_and_target_groups(ctx):
    elb = boto3.client("elbv2")
    lb = ctx["lb"]
    assert lb["Scheme"] == "internet-facing" and len(lb["AvailabilityZones"]) == 2
    ls = {x["Port"]: x for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    want = {1935}
    if ctx["params"].get("IngestCertificateArn"):
        want.add(443)
    assert set(ls) == want, sorted(ls)
    tgs = {tg["TargetGroupArn"]: tg for tg in elb.describe_target_groups()["TargetGroups"]}
    rtmp = tgs[ls[1935]["DefaultActions"][0]["TargetGroupArn"]]
    assert (rtmp["Port"], rtmp["Protocol"], rtmp["TargetType"]) == (1935, "TCP", "ip"), rtmp
    assert rtmp["VpcId"] == ctx["vpc"]["VpcId"]
    if 443 in ls:
        assert ls[443]["DefaultActions"][0]["TargetGroupArn"] == rtmp["TargetGroupArn"]
        assert ls[443]["Certificates"][0]["CertificateArn"] == ctx["params"]["IngestCertificateArn"]


def m_iam_roles_exist_with_their_policies(ctx):
    iam = boto3.client("iam")
    roles = {r["RoleName"]: r for r in iam.list_roles()["Roles"]}
    task = [n for n in roles if "IngestTaskRole" in n]
    execution = [n for n in roles if "IngestExecutionRole" in n]
    assert len(task) == 1 and len(execution) == 1, sorted(roles)
    (name,) = iam.list_role_policies(RoleName=task[0])["PolicyNames"]
    doc = iam.get_role_policy(RoleName=task[0], PolicyName=name)["PolicyDocument"]
    doc = ast.literal_eval(doc) if isinstance(doc, str) else doc  # moto returns a repr
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["HlsObjects"]["Resource"] == [
        f"arn:aws:s3:::{ctx['bucket']}/live/*", f"arn:aws:s3:::{ctx['bucket']}/members/*"]
    table_arn = boto3.client("dynamodb").describe_table(TableName=ctx["table"])["Table"]["TableArn"]
    assert by_sid["Table"]["Resource"] == [table_arn, f"{table_arn}/index/*"]
    assert by_sid["OwnTasks"]["Resource"] == \
        f"arn:aws:ecs:{REGION}:123456789012:task/{ctx['stack']}-ingest/*"


def m_table_and_bucket(ctx):
    t = boto3.client("dynamodb").describe_table(TableName=ctx["table"])["Table"]
    assert {g["IndexName"] for g in t["GlobalSecondaryIndexes"]} >= {"byChannelStatus", "byStatus", "byKeyHash"}
    assert t["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    boto3.client("s3").head_bucket(Bucket=ctx["bucket"])


def m_vpc_subnets_security_group_endpoints(ctx):
    ec2 = boto3.client("ec2")
    vpc = ctx["vpc"]
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    assert sorted(s["CidrBlock"] for s in subnets) == ["10.40.0.0/24", "10.40.1.0/24"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    sgs = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    by_id = {g["GroupId"]: g for g in sgs if g["GroupName"] != "default"}
    task, router = ctx["res"]["IngestTaskSecurityGroup"], ctx["res"]["WhipRouterSecurityGroup"]
    assert set(by_id) == {task, router}, sorted(by_id)
    rules = {(r["IpProtocol"], r["FromPort"], tuple(x["CidrIp"] for x in r["IpRanges"]),
              tuple(x["GroupId"] for x in r.get("UserIdGroupPairs", [])))
             for r in by_id[task]["IpPermissions"]}
    assert rules == {("tcp", 1935, ("0.0.0.0/0",), ()), ("udp", 8890, ("0.0.0.0/0",), ()),
                     ("tcp", 8889, (), (router,))}, rules
    # moto's CloudFormation keeps a new group's default allow-all egress and ignores
    # SecurityGroupEgress: the router group's egress rules are checked on the template
    # (t_whip_router_runs_in_the_ingest_vpc_with_its_own_security_group).
    eps = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["VpcEndpoints"]
    assert sorted((e["ServiceName"], e["VpcEndpointType"]) for e in eps) == [
        (f"com.amazonaws.{REGION}.dynamodb", "Gateway"), (f"com.amazonaws.{REGION}.s3", "Gateway")]
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])
    assert len(igws["InternetGateways"]) == 1


# Every check on moto: this module's, then sign-in's.
MOTO_CHECKS = checks(globals(), "m_") + signin.MOTO_CHECKS
assert len({c.__name__ for c in TEMPLATE_CHECKS + MOTO_CHECKS}) == len(TEMPLATE_CHECKS + MOTO_CHECKS)

# ---------------------------------------------------------------------------- main


def main():
    started = time.monotonic()
    warnings.simplefilter("ignore")
    harness.TEMPLATE = sys.argv[1] if len(sys.argv) > 1 else harness.TEMPLATE
    expanded = sam_transform.expand(harness.TEMPLATE)
    runner = Runner()
    for label, params in PARAMETER_SETS:
        t = Template(expanded, params)
        for check in TEMPLATE_CHECKS:
            runner.run(f"{label}: template: {check.__name__[2:]}", check, t, params)
        moto_scenario(runner, label, expanded, params, MOTO_CHECKS)
    print(f"\ndeploy test ({time.monotonic() - started:.1f} s): "
          f"{runner.passed} passed, {len(runner.failed)} failed")
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
