#!/usr/bin/env python3
"""Deploy test without AWS: infra/template.yaml through the SAM transform into moto's
CloudFormation, then the AWS APIs (moto's) show what the stack created.

    .venv/bin/python tests/deploy/test_template_deploy.py [template]   (scripts/test.sh runs it)

Two parts:

* On moto (in process, `mock_aws`): the SAM-expanded template (scripts/sam_transform.py) is
  created with `create_stack` in three parameter sets, and the ECS cluster, service and task
  definition, the NLB listeners and target groups, the IAM roles, the VPC, subnets, security
  group and endpoints, the ECR repository, the table, the bucket and the functions' URLs are
  read back through the service APIs.
* Sign-in, in three parameter sets (defaults: the Cognito user pool; an external issuer;
  no identity provider, as on LocalStack): the JWT authorizer on every write route and on
  GET /api/nodes, `NONE` on public reads and WHIP, no route that would catch CORS preflight,
  the same issuer/audience/JWKS in the authorizer and in every function's environment, the
  user pool, app client, hosted-UI domain and operators' group, and the outputs. moto's
  CloudFormation has neither Cognito nor API Gateway v2 nor custom resources (they become
  stand-ins, 1. below), so these are checked on the expanded template; the custom
  resource's inline Python runs against moto's Cognito API instead.
* On the template itself, what moto cannot show because it drops or ignores it (moto's
  ECS keeps neither the service's network configuration nor its load balancers, nor the
  task's CPU, network mode or roles; its ELBv2 makes every load balancer an ALB and keeps
  no target group attributes; it skips Application Auto Scaling): stop timeout, public IPs,
  the security group's rules, the task role's least privilege, the service attached to the
  1935 target group, the NLB type, the scaling policy. Conditions are evaluated here for
  each parameter set, as CloudFormation would.

What is changed in the expanded template before moto sees it, and only there
(`for_moto`), each for a documented weakness of moto 5.2's CloudFormation:
  1. resource types moto does not implement (CloudFront, API Gateway v2, S3 bucket
     policies, Application Auto Scaling, Cognito, custom resources) are left out and references to them replaced by
     stand-in strings (`*.moto-stub.invalid`): otherwise the stack fails on their GetAtt;
  2. Fn::Cidr, which moto does not evaluate, is computed here (ipaddress);
  3. NLB listeners: moto creates an ALB whatever `Type` says and refuses TCP/TLS listeners,
     so they become HTTP/HTTPS (the template test checks the real protocols);
  4. ECR: moto generates repository names with the logical id's capitals, which its own
     ECR then refuses; the test names the repository (CloudFormation generates a
     lowercase name);
  5. a role's `Policies` entry that is an Fn::If choosing AWS::NoValue (the pre-warm
     schedule permissions of the stream functions without the ingest tier): moto keeps
     it as a null and fails; the test evaluates those Fn::If with the parameter set.
Exits non-zero if any check fails. Needs the venv from scripts/setup.sh.
"""

import ast
import copy
import io
import ipaddress
import json
import os
import re
import sys
import time
import traceback
import warnings
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

# Dummy credentials and no endpoint override: everything below talks to moto in process.
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(var, None)
os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                  AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")

import boto3  # noqa: E402
import sam_transform  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.cloudformation.parsing import get_model_map  # noqa: E402

TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
REGION = "us-east-1"

# The task role may grant these actions on Resource "*", and only these: AWS has no
# resource-level permission for them (see the comment on IngestTaskRole).
STAR_RESOURCE_ALLOWED = {"ec2:DescribeNetworkInterfaces", "cloudwatch:PutMetricData"}

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rill-ingest:test"

# --------------------------------------------------------------------- template helpers


class Template:
    """The expanded template with its conditions evaluated for one parameter set."""

    def __init__(self, tpl, params):
        self.raw = tpl
        self.params = {k: str(p.get("Default", "")) for k, p in tpl.get("Parameters", {}).items()}
        self.params.update(params)
        self.conditions = {}
        for name in tpl.get("Conditions", {}):
            self.condition(name)
        self.resources = {
            name: self.resolve(r) for name, r in tpl["Resources"].items()
            if "Condition" not in r or self.condition(r["Condition"])
        }

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.raw["Conditions"][name])
        return self.conditions[name]

    def truth(self, c):
        (fn, arg), = c.items()
        if fn == "Fn::Equals":
            a, b = (self.resolve(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.truth(x) for x in arg)
        if fn == "Condition":
            return self.condition(arg)
        raise AssertionError(f"condition function {fn} not handled")

    def resolve(self, v):
        """Fn::If and parameter Refs resolved; other intrinsics left as they are."""
        if isinstance(v, dict):
            if set(v) == {"Fn::If"}:
                cond, a, b = v["Fn::If"]
                return self.resolve(a if self.condition(cond) else b)
            if set(v) == {"Ref"} and v["Ref"] in self.params:
                return self.params[v["Ref"]]
            out = {}
            for k, x in v.items():
                x = self.resolve(x)
                if x != {"Ref": "AWS::NoValue"}:
                    out[k] = x
            return out
        if isinstance(v, list):
            return [x for x in (self.resolve(x) for x in v) if x != {"Ref": "AWS::NoValue"}]
        return v

    def of_type(self, type_):
        return {n: r for n, r in self.resources.items() if r["Type"] == type_}

    def rill_functions(self):
        """The Rill functions (from AWS::Serverless::Function, named {stack}-{binary}); not
        the user pool client's deploy-time helper, which has no name."""
        return {n: r for n, r in self.of_type("AWS::Lambda::Function").items()
                if "FunctionName" in r["Properties"]}

    def one(self, type_):
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.items()))


def target(v):
    """Logical id a Ref / GetAtt / Sub points at."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            ga = v["Fn::GetAtt"]
            return (ga.split(".")[0] if isinstance(ga, str) else ga[0])
    return None


def as_list(v):
    return v if isinstance(v, list) else [v]


# ------------------------------------------------------------------------ moto patches


def for_moto(tpl, params, stack):
    """A copy of the expanded template that moto's CloudFormation can create (module doc)."""
    tpl = copy.deepcopy(tpl)
    supported = get_model_map()
    gone = {n for n, r in tpl["Resources"].items() if r["Type"] not in supported}
    sub_ref = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}")

    def stand_in(name, attr=None):
        return f"{name.lower()}-{attr.lower()}.moto-stub.invalid" if attr else f"moto-stub-{name}"

    def vpc_cidr(v):
        if isinstance(v, dict) and "Fn::GetAtt" in v:
            v = tpl["Resources"][target(v)]["Properties"]["CidrBlock"]
        if isinstance(v, dict) and "Ref" in v:
            v = params.get(v["Ref"], tpl["Parameters"][v["Ref"]].get("Default"))
        return v

    def fix(v):
        if isinstance(v, dict):
            if set(v) == {"Ref"} and v["Ref"] in gone:
                return stand_in(v["Ref"])
            if set(v) == {"Fn::GetAtt"} and target(v) in gone:
                ga = v["Fn::GetAtt"]
                ga = ga.split(".", 1) if isinstance(ga, str) else ga
                return stand_in(ga[0], ga[1])
            if set(v) == {"Fn::Sub"}:
                def one(m):
                    return stand_in(m.group(1), m.group(2)) if m.group(1) in gone else m.group(0)
                s = v["Fn::Sub"]
                if isinstance(s, str):
                    return {"Fn::Sub": sub_ref.sub(one, s)}
                return {"Fn::Sub": [sub_ref.sub(one, s[0]), fix(s[1])]}
            if set(v) == {"Fn::Cidr"}:
                block, count, bits = v["Fn::Cidr"]
                net = ipaddress.ip_network(vpc_cidr(block))
                subnets = net.subnets(new_prefix=net.max_prefixlen - int(bits))
                return [str(s) for s, _ in zip(subnets, range(int(count)))]
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    conditions = Template(tpl, params)
    for r in tpl["Resources"].values():
        if r["Type"] == "AWS::IAM::Role" and "Policies" in r.get("Properties", {}):
            r["Properties"]["Policies"] = conditions.resolve(r["Properties"]["Policies"])
    for name in gone:
        del tpl["Resources"][name]
    for r in tpl["Resources"].values():
        if "DependsOn" in r:
            deps = [d for d in as_list(r["DependsOn"]) if d not in gone]
            if deps:
                r["DependsOn"] = deps
            else:
                del r["DependsOn"]
        if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener":
            p = r["Properties"]
            p["Protocol"] = {"TLS": "HTTPS"}.get(p["Protocol"], "HTTP")
        if r["Type"] == "AWS::ECR::Repository":
            r["Properties"].setdefault("RepositoryName", f"{stack}-ingest".lower())
    tpl["Resources"] = fix(tpl["Resources"])
    tpl["Outputs"] = fix(tpl.get("Outputs", {}))
    return tpl, gone


def deploy(expanded, params, stack):
    """create_stack on moto; returns the stack's outputs."""
    s3 = boto3.client("s3", region_name=REGION)
    # The transform points every function at s3://sam-artifacts-placeholder/<id>.zip.
    s3.create_bucket(Bucket=sam_transform.PLACEHOLDER_BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    for r in expanded["Resources"].values():
        if r["Type"] == "AWS::Lambda::Function" and "S3Key" in r["Properties"]["Code"]:
            code = r["Properties"]["Code"]
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=buf.getvalue())
    body, _ = for_moto(expanded, params, stack)
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    st = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
        if "FAILED" in e["ResourceStatus"]
    ]
    assert st["StackStatus"] == "CREATE_COMPLETE" and not failed, (st["StackStatus"], failed)
    return {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}


# ------------------------------------------------------------------- parameter sets

# Every parameter at its default, as `sam deploy --guided` answered with Enter gives it: no
# image yet (first deploy), WHIP through the router on the HTTP API, no certificate, the
# Cognito user pool, no JwtSecret.
FIRST_DEPLOY = {}
# Image pushed, RTMPS certificate, WHIP base URL overridden (a custom domain), and an
# external identity provider instead of the user pool.
WITH_IMAGE = {
    "IngestImageUri": IMAGE,
    "IngestPublicUrl": "https://whip.rill.test",
    "IngestMinTasks": "2",
    # IngestCertificateArn: requested from moto's ACM in the moto scenario; any ARN here.
    "IngestCertificateArn":
        "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "JwtIssuer": "https://login.rill.test",
    "JwtAudience": "rill-api",
}
# No identity provider at all, as the LocalStack hook deploys it: HS256 development tokens.
NO_USER_POOL = {"CreateUserPool": "false", "JwtSecret": "x" * 40}

PARAMETER_SETS = (("first-deploy", FIRST_DEPLOY), ("with-image", WITH_IMAGE),
                  ("no-user-pool", NO_USER_POOL))

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


def t_fanout_is_not_invoked_for_heartbeats_and_lease_renewals(t, p):
    (esm,) = t.of_type("AWS::Lambda::EventSourceMapping").values()
    (f,) = esm["Properties"]["FilterCriteria"]["Filters"]
    keys = json.loads(f["Pattern"])["dynamodb"]["Keys"]
    assert keys["pk"] == {"S": [{"prefix": "STREAM#"}]}, keys
    assert keys["sk"] == {"S": [{"anything-but": ["LEASE"]}]}, keys


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


def statements(role):
    for pol in role["Properties"].get("Policies", []):
        yield from as_list(pol["PolicyDocument"]["Statement"])
    assert not role["Properties"].get("ManagedPolicyArns"), "managed policies are not least privilege"


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
    assert granted["s3:PutObject"] == [{"Fn::Sub": "${MediaBucket.Arn}/live/*"}]
    assert granted["s3:DeleteObject"] == [{"Fn::Sub": "${MediaBucket.Arn}/live/*"}]
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


def function(t, name):
    """The expanded function whose FunctionName is ${AWS::StackName}-{name}."""
    (fn,) = [f for f in t.rill_functions().values()
             if f["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + name}]
    return fn["Properties"]


def granted_by(role):
    """{action: [(resource, condition), ...]} over a role's inline policies."""
    granted = {}
    for s in statements(role) if "Type" in role else ():
        assert s["Effect"] == "Allow"
        for a in as_list(s["Action"]):
            assert "*" not in a, f"wildcard action {a}"
            for r in as_list(s["Resource"]):
                granted.setdefault(a, []).append((json.dumps(r, sort_keys=True), s.get("Condition")))
    return granted


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
        assert not any(a.startswith(("scheduler:", "iam:"))
                       for a in function_grants(t, "streams-create"))
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


def t_stream_functions_manage_only_their_prewarm_schedules(t, p):
    if not p.get("IngestImageUri"):
        return
    expected = {
        "streams-create": {"scheduler:CreateSchedule", "scheduler:UpdateSchedule"},
        "streams-update": {"scheduler:CreateSchedule", "scheduler:UpdateSchedule",
                           "scheduler:DeleteSchedule"},
        "streams-start": {"scheduler:DeleteSchedule"},
        "streams-cancel": {"scheduler:DeleteSchedule"},
    }
    for name, actions in expected.items():
        granted = function_grants(t, name)
        scheduler = {a for a in granted if a.startswith("scheduler:")}
        assert scheduler == actions, (name, sorted(scheduler))
        for a in scheduler:
            assert granted[a] == [(PREWARM_SCHEDULES, None)], (name, a, granted[a])
        passing = granted.get("iam:PassRole", [])
        if "scheduler:CreateSchedule" in actions:
            assert passing == [(json.dumps({"Fn::GetAtt": ["IngestPrewarmSchedulerRole", "Arn"]}),
                                {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}})], \
                (name, passing)
        else:
            assert not passing, (name, passing)
    for fn in t.rill_functions().values():
        name = fn["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        if name not in expected:
            assert not any(a.startswith("scheduler:") for a in function_grants(t, name)), name


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


# ------------------------------------------------------------------------------ sign-in

# GET routes that need the caller, so behind the authorizer like the writes. Every other GET
# is public (a function that reads an optional caller verifies the token itself).
CALLER_GETS = {("/api/nodes", "get")}
WRITE_METHODS = {"post", "put", "patch", "delete"}
COGNITO_ISSUER = {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
POOL_RESOURCES = {"UserPool", "UserPoolClient", "UserPoolDomain", "OperatorUserGroup",
                  "UserPoolClientOAuth", "UserPoolClientOAuthFunction", "UserPoolClientOAuthRole"}


def identity(t, p):
    """(issuer, audience, jwks) the stack should trust for this parameter set."""
    if p.get("JwtIssuer"):
        jwks = p.get("JwksUrl") or {"Fn::Sub": "${JwtIssuer}/.well-known/jwks.json"}
        return p["JwtIssuer"], p["JwtAudience"], jwks
    if t.params["CreateUserPool"] == "true":
        return (COGNITO_ISSUER, {"Ref": "UserPoolClient"},
                {"Fn::Sub": COGNITO_ISSUER["Fn::Sub"] + "/.well-known/jwks.json"})
    return None


def http_routes(t):
    body = t.resources["HttpApi"]["Properties"]["Body"]
    return {(path, method): op for path, ops in body["paths"].items()
            for method, op in ops.items()}


def t_write_routes_need_the_jwt_authorizer_reads_and_whip_do_not(t, p):
    routes = http_routes(t)
    assert len(routes) >= 30, len(routes)
    for (path, method), op in sorted(routes.items()):
        public = path.startswith("/whip/") or (method == "get" and (path, method) not in CALLER_GETS)
        assert method in WRITE_METHODS | {"get"}, (path, method)
        want = [{"NONE": []}] if public else [{"Jwt": []}]
        assert op.get("security") == want, (method.upper(), path, op.get("security"), want)
    # SAM accepts `Authorizer: NONE` only next to a DefaultAuthorizer: a new route is
    # protected unless its event says otherwise.
    raw = sam_transform.decode(TEMPLATE)[0]["Resources"]["HttpApi"]["Properties"]["Auth"]
    assert raw["DefaultAuthorizer"] == "Jwt", raw


def t_cors_preflight_is_answered_before_any_authorizer(t, p):
    # API Gateway answers OPTIONS itself when CORS is configured and no route matches
    # OPTIONS: no ANY, no OPTIONS, no $default route.
    routes = http_routes(t)
    assert not [r for r in routes if r[1] in ("options", "x-amazon-apigateway-any-method")], routes
    assert not [r for r in routes if r[0] in ("$default", "/{proxy+}")], routes
    cors = t.resources["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert "authorization" in {h.lower() for h in cors["allowHeaders"]}, cors


def t_authorizer_trusts_the_same_issuer_and_audience_as_the_functions(t, p):
    body = t.resources["HttpApi"]["Properties"]["Body"]
    auth = body["components"]["securitySchemes"]["Jwt"]["x-amazon-apigateway-authorizer"]
    assert (auth["type"], auth["identitySource"]) == ("jwt", "$request.header.Authorization"), auth
    cfg = auth["jwtConfiguration"]
    want = identity(t, p)
    if want:
        assert (cfg["issuer"], cfg["audience"]) == (want[0], [want[1]]), cfg
    else:
        # No provider: a placeholder nobody signs for (the functions use JWT_SECRET).
        assert cfg["issuer"].endswith(".invalid"), cfg


def t_every_function_gets_the_identity_settings(t, p):
    want = identity(t, p)
    expected = {
        "JWT_ISSUER": want[0] if want else "",
        "JWT_AUDIENCE": want[1] if want else "",
        "JWKS_URL": want[2] if want else "",
        "JWT_SECRET": p.get("JwtSecret", ""),
    }
    fns = t.rill_functions()
    assert len(fns) >= 37, len(fns)
    for name, fn in fns.items():
        env = fn["Properties"]["Environment"]["Variables"]
        got = {k: env.get(k) for k in expected}
        assert got == expected, (name, got, expected)
    ops = function(t, "nodes-list")["Environment"]["Variables"]
    assert ops["OPERATOR_GROUP"] == t.params["OperatorGroup"], ops


def t_jwt_secret_can_be_left_empty_by_a_guided_deploy(t, p):
    # `sam deploy --guided` asks a NoEcho parameter again without a default and cannot
    # leave it empty; every parameter must be answerable with Enter.
    for name, param in t.raw["Parameters"].items():
        assert not param.get("NoEcho"), f"{name} is NoEcho"
        assert "Default" in param, f"{name} has no default"
    assert t.raw["Parameters"]["JwtSecret"]["Default"] == ""


def t_user_pool_only_without_an_external_issuer(t, p):
    present = POOL_RESOURCES & set(t.resources)
    if p.get("JwtIssuer") or t.params["CreateUserPool"] != "true":
        assert not present, sorted(present)
        return
    assert present == POOL_RESOURCES, sorted(POOL_RESOURCES - present)
    pool = t.resources["UserPool"]["Properties"]
    assert pool["UsernameAttributes"] == ["email"] and pool["AutoVerifiedAttributes"] == ["email"]
    # Chat shows the `name` claim: the sign-up form must ask for it.
    assert {"Name": "name", "AttributeDataType": "String", "Mutable": True, "Required": True} \
        in pool["Schema"], pool["Schema"]
    client = t.resources["UserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False, "a browser keeps no client secret"
    assert target(client["UserPoolId"]) == "UserPool"
    domain = t.resources["UserPoolDomain"]["Properties"]["Domain"]
    if p.get("AuthDomainPrefix"):
        assert domain == p["AuthDomainPrefix"]
    else:
        assert domain == {"Fn::Join": ["-", ["rill", {"Fn::Select": [
            2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]}, domain
    group = t.resources["OperatorUserGroup"]["Properties"]
    assert group["GroupName"] == t.params["OperatorGroup"] and target(group["UserPoolId"]) == "UserPool"
    oauth = t.resources["UserPoolClientOAuth"]["Properties"]
    assert target(oauth["ClientId"]) == "UserPoolClient"
    assert oauth["Scopes"] == ["openid", "profile", "email"]
    web = [{"Fn::Sub": "https://${WebDistribution.DomainName}"},
           {"Fn::Sub": "https://${WebDistribution.DomainName}/"}]
    assert oauth["CallbackUrls"] == web and oauth["LogoutUrls"] == web, oauth
    fn = t.resources["UserPoolClientOAuthFunction"]["Properties"]
    assert target(fn["Role"]) == "UserPoolClientOAuthRole"
    role = t.resources["UserPoolClientOAuthRole"]
    granted = granted_by({"Type": "AWS::IAM::Role", "Properties": {
        "Policies": role["Properties"]["Policies"]}})
    pool_arn = json.dumps({"Fn::GetAtt": ["UserPool", "Arn"]})
    assert granted == {"cognito-idp:DescribeUserPoolClient": [(pool_arn, None)],
                       "cognito-idp:UpdateUserPoolClient": [(pool_arn, None)]}, granted


def t_outputs_for_the_web_app(t, p):
    outputs = {n for n, o in t.raw["Outputs"].items()
               if "Condition" not in o or t.condition(o["Condition"])}
    pool = {"UserPoolId", "UserPoolClientId", "AuthDomainUrl", "WebConfig"}
    if identity(t, p) is None:
        assert not (pool | {"Issuer"}) & outputs, outputs
    elif p.get("JwtIssuer"):
        assert "Issuer" in outputs and not pool & outputs, outputs
        assert t.resolve(t.raw["Outputs"]["Issuer"]["Value"]) == p["JwtIssuer"]
    else:
        assert pool | {"Issuer"} <= outputs, outputs
        assert t.raw["Outputs"]["AuthDomainUrl"]["Value"] == {
            "Fn::Sub": "https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"}


def t_an_external_issuer_needs_an_audience(t, p):
    (rule,) = t.raw["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]}
    (a,) = rule["Assertions"]
    assert a["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]}


TEMPLATE_CHECKS = [v for k, v in list(globals().items()) if k.startswith("t_")]

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
    assert by_sid["HlsObjects"]["Resource"] == f"arn:aws:s3:::{ctx['bucket']}/live/*"
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


def m_functions_get_the_identity_settings(ctx):
    lam = boto3.client("lambda")
    p = ctx["params"]
    for name in ("streams-create", "ws-connect", "nodes-list"):
        env = lam.get_function_configuration(FunctionName=f"{ctx['stack']}-{name}")["Environment"]["Variables"]
        got = (env["JWT_ISSUER"], env["JWKS_URL"], env["JWT_AUDIENCE"], env["JWT_SECRET"])
        if p.get("JwtIssuer"):
            want = (p["JwtIssuer"], f"{p['JwtIssuer']}/.well-known/jwks.json", p["JwtAudience"], "")
        elif p.get("CreateUserPool", "true") == "true":
            # moto has no Cognito in CloudFormation: the pool's id is a stand-in (module doc).
            iss = f"https://cognito-idp.{REGION}.amazonaws.com/moto-stub-UserPool"
            want = (iss, f"{iss}/.well-known/jwks.json", "moto-stub-UserPoolClient", "")
        else:
            want = ("", "", "", p["JwtSecret"])
        assert got == want, (name, got, want)


def m_user_pool_client_oauth_helper_on_cognito(ctx):
    """The inline Python of UserPoolClientOAuthFunction, run against moto's Cognito with
    the client as the template creates it (moto's CloudFormation has no Cognito, and runs
    no custom resource)."""
    tpl = ctx["template"]
    if "UserPoolClientOAuth" not in tpl.resources:
        return
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="rill-users")["UserPool"]["Id"]
    props = {k: v for k, v in tpl.resources["UserPoolClient"]["Properties"].items() if k != "UserPoolId"}
    client = idp.create_user_pool_client(UserPoolId=pool, **props)["UserPoolClient"]
    before = {k: client[k] for k in ("ExplicitAuthFlows", "PreventUserExistenceErrors",
                                     "EnableTokenRevocation", "AccessTokenValidity",
                                     "RefreshTokenValidity", "TokenValidityUnits") if k in client}
    assert "AllowedOAuthFlows" not in client, client

    sent = []
    cfnresponse = type(sys)("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical_id, reason=None: \
        sent.append((status, physical_id, reason))
    sys.modules["cfnresponse"] = cfnresponse
    code = {}
    exec(tpl.resources["UserPoolClientOAuthFunction"]["Properties"]["Code"]["ZipFile"], code)
    web = "https://d111111abcdef8.cloudfront.net"
    event = {"RequestType": "Create", "ResourceProperties": {
        "UserPoolId": pool, "ClientId": client["ClientId"],
        "Scopes": ["openid", "profile", "email"], "CallbackUrls": [web, web + "/"],
        "LogoutUrls": [web, web + "/"]}}
    code["handler"](event, None)
    assert sent == [("SUCCESS", client["ClientId"], None)], sent
    after = idp.describe_user_pool_client(UserPoolId=pool, ClientId=client["ClientId"])["UserPoolClient"]
    assert after["AllowedOAuthFlows"] == ["code"] and after["AllowedOAuthFlowsUserPoolClient"] is True
    assert after["AllowedOAuthScopes"] == ["openid", "profile", "email"]
    assert after["CallbackURLs"] == [web, web + "/"] and after["LogoutURLs"] == [web, web + "/"]
    assert {k: after.get(k) for k in before} == before, "settings the helper must keep were reset"
    # A failure is reported to CloudFormation (which rolls back), never left hanging.
    sent.clear()
    code["handler"](dict(event, ResourceProperties=dict(event["ResourceProperties"], ClientId="nope")), None)
    assert [s[0] for s in sent] == ["FAILED"] and sent[0][2], sent
    # Delete changes nothing (CloudFormation deletes the client itself).
    sent.clear()
    code["handler"](dict(event, RequestType="Delete"), None)
    assert [s[0] for s in sent] == ["SUCCESS"], sent


def m_outputs_name_the_issuer(ctx):
    out, p = ctx["outputs"], ctx["params"]
    if p.get("JwtIssuer"):
        assert out["Issuer"] == p["JwtIssuer"], out
    elif p.get("CreateUserPool", "true") == "true":
        assert out["Issuer"].startswith(f"https://cognito-idp.{REGION}.amazonaws.com/"), out
        assert out["AuthDomainUrl"].endswith(f".auth.{REGION}.amazoncognito.com"), out
        assert {"UserPoolId", "UserPoolClientId"} <= set(out), out
        # The web app's config.json: what its Sign in needs, as web/src/client/oidc.ts reads it.
        web = json.loads(out["WebConfig"])
        assert web == {"auth": {"domain": out["AuthDomainUrl"], "clientId": out["UserPoolClientId"]}}, web
    else:
        assert not {"Issuer", "UserPoolId", "AuthDomainUrl", "WebConfig"} & set(out), out


MOTO_CHECKS = [v for k, v in list(globals().items()) if k.startswith("m_")]

# ---------------------------------------------------------------------------- runner


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def run(self, label, fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - report every failure, go on
            self.failed.append(label)
            detail = traceback.format_exc(limit=3) if not isinstance(exc, AssertionError) else ""
            print(f"FAIL {label}: {type(exc).__name__}: {exc}\n{detail}".rstrip())
        else:
            self.passed += 1
            print(f"ok   {label}")


def moto_scenario(runner, label, expanded, params):
    stack = f"rill-{label}"
    with mock_aws():
        params = dict(params)
        if params.get("IngestCertificateArn"):
            # moto's ELBv2 checks that the listener's certificate exists in ACM.
            acm = boto3.client("acm", region_name=REGION)
            params["IngestCertificateArn"] = acm.request_certificate(DomainName="ingest.rill.test")["CertificateArn"]
        ctx = {"stack": stack, "params": params, "template": Template(expanded, params)}
        started = time.monotonic()
        try:
            ctx["outputs"] = deploy(expanded, params, stack)
        except Exception as exc:  # noqa: BLE001
            runner.failed.append(f"{label}: create_stack")
            print(f"FAIL {label}: create_stack: {exc}")
            return
        runner.passed += 1
        print(f"ok   {label}: create_stack CREATE_COMPLETE ({time.monotonic() - started:.1f} s)")
        res = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
               boto3.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]}
        ctx["table"], ctx["bucket"] = res["StreamsTable"], res["MediaBucket"]
        ctx["res"] = res
        ctx["subnets"] = [res["IngestPublicSubnetA"], res["IngestPublicSubnetB"]]
        ctx["api_id"] = "moto-stub-HttpApi"
        ctx["vpc"] = boto3.client("ec2").describe_vpcs(VpcIds=[res["IngestVpc"]])["Vpcs"][0]
        (ctx["lb"],) = boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
        for check in MOTO_CHECKS:
            runner.run(f"{label}: moto: {check.__name__[2:]}", check, ctx)


def main():
    started = time.monotonic()
    warnings.simplefilter("ignore")
    global TEMPLATE
    TEMPLATE = sys.argv[1] if len(sys.argv) > 1 else TEMPLATE
    expanded = sam_transform.expand(TEMPLATE)
    runner = Runner()
    for label, params in PARAMETER_SETS:
        t = Template(expanded, params)
        for check in TEMPLATE_CHECKS:
            runner.run(f"{label}: template: {check.__name__[2:]}", check, t, params)
        moto_scenario(runner, label, expanded, params)
    print(f"\ndeploy test ({time.monotonic() - started:.1f} s): "
          f"{runner.passed} passed, {len(runner.failed)} failed")
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
