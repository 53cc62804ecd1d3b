"""The harness of tests/deploy/test_template_deploy.py: the expanded template with its
conditions evaluated (`Template`), the copy of it that moto's CloudFormation can create
(`for_moto`), `create_stack` on moto (`deploy`), the three parameter sets, the template
helpers the checks share, the check registry (`checks`) and the runner (`Runner`,
`moto_scenario`). The checks themselves are in test_template_deploy.py (the ingest tier and
the other resources) and template_deploy_signin.py (sign-in).

Importing this module sets dummy AWS credentials, drops any endpoint override and puts
scripts/ on sys.path (for sam_transform): everything the deploy test does talks to moto in
process.

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
"""

import copy
import io
import ipaddress
import json
import os
import re
import sys
import time
import traceback
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


def statements(role):
    for pol in role["Properties"].get("Policies", []):
        yield from as_list(pol["PolicyDocument"]["Statement"])
    assert not role["Properties"].get("ManagedPolicyArns"), "managed policies are not least privilege"


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
# Image pushed, RTMPS certificate, WHIP base URL overridden (a custom domain), an external
# identity provider instead of the user pool, and a key pair for members-only media.
WITH_IMAGE = {
    "IngestImageUri": IMAGE,
    "IngestPublicUrl": "https://whip.rill.test",
    "IngestMinTasks": "2",
    # IngestCertificateArn: requested from moto's ACM in the moto scenario; any ARN here.
    "IngestCertificateArn":
        "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "JwtIssuer": "https://login.rill.test",
    "JwtAudience": "rill-api",
    # Members-only media signed by a key group (a P-256 public key made with openssl).
    "HlsSigningPublicKey": "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/jZz27sPeKQWqTNchDzpvMi34GGW\n"
        "JeMSDOkKWz9dvvd5ULFy26mlY75X+r50lhpaTpwlBL4QSvh6Qh6+c6rnZQ==\n"
        "-----END PUBLIC KEY-----\n",
    "HlsSigningKeySecretArn":
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rill/hls-signing-key-AbCdEf",
}
# No identity provider at all, as the LocalStack hook deploys it: HS256 development tokens.
NO_USER_POOL = {"CreateUserPool": "false", "JwtSecret": "x" * 40}

PARAMETER_SETS = (("first-deploy", FIRST_DEPLOY), ("with-image", WITH_IMAGE),
                  ("no-user-pool", NO_USER_POOL))

# ---------------------------------------------------------------------------- runner


def checks(namespace, prefix):
    """The checks a module defines, in the order it defines them: its own functions whose
    names start with `prefix` (`t_` on the template, `m_` on moto). A function imported from
    another module is not collected there, so every check is collected once, by the module
    that defines it (test_template_deploy.py adds template_deploy_signin.py's lists to its
    own)."""
    return [v for k, v in list(namespace.items())
            if k.startswith(prefix) and callable(v) and getattr(v, "__module__", None) == namespace["__name__"]]


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


def moto_scenario(runner, label, expanded, params, moto_checks):
    """create_stack for one parameter set, then every check on moto (`moto_checks`)."""
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
        for check in moto_checks:
            runner.run(f"{label}: moto: {check.__name__[2:]}", check, ctx)
