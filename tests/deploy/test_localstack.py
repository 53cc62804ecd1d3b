#!/usr/bin/env python3
"""What of localstack/ can be tested without a Docker engine (there is none here).

    .venv/bin/python tests/deploy/test_localstack.py      (scripts/test.sh runs it)

* localstack/docker-compose.yml against the Compose Specification JSON schema
  (localstack/schema/compose-spec.json, vendored; see its README) with jsonschema, plus the
  cross-references the schema cannot see (services, volumes, the build context, the ports
  the Dockerfile exposes, the ingest environment file's path);
* every environment variable the ingest service gets (from the compose file and from the
  file the hook writes) is one rill-ingest reads, as tests/deploy/test_template_deploy.py
  checks the ECS task's;
* the hook's helper (localstack/init/rill_localstack.py) on the real infra/template.yaml:
  each function's CodeUri pointed at its cargo-lambda output, nothing else changed;
* the hook itself (localstack/init/ready.d/deploy.sh) in a scratch repository with a
  stand-in `aws` command: what it packages and deploys, the file it writes for the ingest
  node, and that a failed run leaves no such file behind;
* the ingest service's entrypoint line, run by /bin/sh with its paths moved to a scratch
  directory.

What stays untested: LocalStack itself, the image build, and the stack on LocalStack.
Exits non-zero if any check fails; the last line is "N passed, N failed".
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

import yaml
from jsonschema import Draft202012Validator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALSTACK = os.path.join(ROOT, "localstack")
COMPOSE = os.path.join(LOCALSTACK, "docker-compose.yml")
SCHEMA = os.path.join(LOCALSTACK, "schema", "compose-spec.json")
HOOK = os.path.join(LOCALSTACK, "init", "ready.d", "deploy.sh")
HELPER = os.path.join(LOCALSTACK, "init", "rill_localstack.py")
TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
DOCKERFILE = os.path.join(ROOT, "ingest-node", "Dockerfile")

sys.dont_write_bytecode = True  # no __pycache__ next to the hook's helper
sys.path.insert(0, os.path.dirname(HELPER))
import rill_localstack  # noqa: E402

# Where the hook writes the ingest node's environment (the compose file's named volume).
OUT_DIR = "/var/lib/rill-localstack"
ENV_FILE = f"{OUT_DIR}/ingest.env"
# Read by the AWS SDK's default credential chain (rill-aws: aws_config::defaults), not by
# the node's own configuration.
SDK_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def schema_errors(doc):
    with open(SCHEMA) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags kept as {tag: value}."""


CfnLoader.add_multi_constructor("!", lambda loader, tag, node: {tag: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
    loader.construct_mapping(node))})


def cfn(text):
    return yaml.load(text, Loader=CfnLoader)


def node_env_names():
    """Variables rill-ingest reads (same parse as tests/deploy/test_template_deploy.py):
    every name handed to a reader in the node's configuration and rill-aws's settings."""
    names = set()
    pattern = re.compile(r'\(\s*"([A-Z][A-Z0-9_]{2,})"')
    for path in ("ingest-node/src/config.rs", "ingest-node/src/main.rs", "ingest-node/src/run.rs",
                 "functions/aws/src/config.rs"):
        full = os.path.join(ROOT, path)
        if os.path.exists(full):
            names.update(pattern.findall(open(full).read()))
    names.add("RUST_LOG")  # tracing_subscriber's EnvFilter::try_from_default_env (main.rs)
    return names


def dockerfile_instruction(name):
    with open(DOCKERFILE) as f:
        return [line[len(name) + 1:].strip() for line in f if line.startswith(name + " ")]


def hook_env_file_vars():
    text = rill_localstack.ingest_env(
        [{"OutputKey": "TableName", "OutputValue": "t"}, {"OutputKey": "BucketName", "OutputValue": "b"}],
        "http://h")
    return [line.split("=", 1)[0] for line in text.splitlines()]


# ------------------------------------------------------------------------ compose file


def t_compose_file_is_valid_against_the_compose_spec_schema():
    errors = schema_errors(compose())
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def t_the_schema_check_rejects_broken_compose_files():
    # Negative controls: the same file with one mistake each must fail validation.
    good = compose()
    broken = []
    d = copy.deepcopy(good)
    d["servces"] = d.pop("services")
    broken.append(("misspelt top-level key", d))
    d = copy.deepcopy(good)
    d["services"]["ingest"]["depends_on"]["localstack"]["condition"] = "healthy"
    broken.append(("unknown depends_on condition", d))
    d = copy.deepcopy(good)
    d["services"]["ingest"]["build"]["dockerfiel"] = "x"
    broken.append(("misspelt build key", d))
    d = copy.deepcopy(good)
    d["services"]["ingest"]["environment"]["TABLE_NAME"] = {"nested": "map"}
    broken.append(("non-scalar environment value", d))
    d = copy.deepcopy(good)
    d["services"]["localstack"]["healthcheck"]["tset"] = d["services"]["localstack"]["healthcheck"].pop("test")
    broken.append(("misspelt healthcheck key", d))
    for what, doc in broken:
        assert schema_errors(doc), f"{what}: accepted by the schema"


def t_compose_cross_references_hold():
    c = compose()
    services = c["services"]
    assert set(services) == {"localstack", "ingest"}, sorted(services)
    named = set(c.get("volumes") or {})
    for name, svc in services.items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health; it has no healthcheck"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} not declared"
    assert services["ingest"]["depends_on"] == {"localstack": {"condition": "service_healthy"}}
    # Build context = the repo root (what ingest-node/Dockerfile says), dockerfile inside it.
    build = services["ingest"]["build"]
    context = os.path.normpath(os.path.join(LOCALSTACK, build["context"]))
    assert context == ROOT, context
    assert os.path.normpath(os.path.join(context, build["dockerfile"])) == DOCKERFILE
    assert "-f ingest-node/Dockerfile" in open(DOCKERFILE).read() and " ." in open(DOCKERFILE).read()
    # The repository mount LocalStack's hook reads (RILL_REPO default /rill).
    ls_vols = services["localstack"]["volumes"]
    assert "..:/rill:ro" in ls_vols and "./init/ready.d:/etc/localstack/init/ready.d:ro" in ls_vols


def t_ingest_ports_are_the_ones_the_image_exposes():
    (expose,) = dockerfile_instruction("EXPOSE")
    exposed = {p if "/" in p else p + "/tcp" for p in expose.split()}
    published = set()
    for p in compose()["services"]["ingest"]["ports"]:
        host_ip, host_port, rest = p.split(":")
        assert host_ip == "127.0.0.1", p  # with WEBRTC_ADVERTISE_IP=127.0.0.1: this host only
        container = rest if "/" in rest else rest + "/tcp"
        assert host_port == container.split("/")[0], p
        published.add(container)
    assert published == exposed == {"1935/tcp", "8889/tcp", "8890/udp"}, (published, exposed)


def t_ingest_entrypoint_sources_the_hooks_file_then_runs_the_images_entrypoint():
    svc = compose()["services"]
    (entrypoint,) = dockerfile_instruction("ENTRYPOINT")
    (image_entry,) = json.loads(entrypoint)
    sh, dash_c, line = svc["ingest"]["entrypoint"]
    assert (sh, dash_c) == ("/bin/sh", "-c")
    assert line.endswith(f"exec {image_entry}"), line
    assert f". {ENV_FILE}" in line, line
    # The file lives on the volume both services mount, where the hook writes it...
    assert f"rill-localstack:{OUT_DIR}:ro" in svc["ingest"]["volumes"]
    assert f"rill-localstack:{OUT_DIR}" in [v.split("  ")[0] for v in svc["localstack"]["volumes"]]
    assert f'OUT_DIR="${{RILL_OUT_DIR:-{OUT_DIR}}}"' in open(HOOK).read()
    # ...and LocalStack is healthy only once it exists (the hook writes it last).
    check = svc["localstack"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL" and f"test -s {ENV_FILE}" in check[1], check
    assert '"completed"' in check[1], check


def t_the_entrypoint_line_runs_under_sh():
    line = compose()["services"]["ingest"]["entrypoint"][2]
    (image_entry,) = json.loads(dockerfile_instruction("ENTRYPOINT")[0])
    with tempfile.TemporaryDirectory() as tmp:
        env_file = os.path.join(tmp, "ingest.env")
        with open(env_file, "w") as f:
            f.write(rill_localstack.ingest_env(
                [{"OutputKey": "TableName", "OutputValue": "rill-StreamsTable-1X2Y"},
                 {"OutputKey": "BucketName", "OutputValue": "rill-media-local"}],
                "http://localhost.localstack.cloud:4566/rill-media-local"))
        fake_entry = os.path.join(tmp, "entry")
        with open(fake_entry, "w") as f:
            f.write("#!/bin/sh\nenv\n")
        os.chmod(fake_entry, 0o755)
        moved = line.replace(ENV_FILE, env_file).replace(image_entry, fake_entry)
        assert moved != line and ENV_FILE not in moved and image_entry not in moved
        out = subprocess.run(["/bin/sh", "-c", moved], env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert "TABLE_NAME=rill-StreamsTable-1X2Y" in out, out
    assert "BUCKET_NAME=rill-media-local" in out
    assert "HLS_BASE_URL=http://localhost.localstack.cloud:4566/rill-media-local" in out


def t_every_ingest_variable_is_one_the_node_reads():
    env = compose()["services"]["ingest"]["environment"]
    assert isinstance(env, dict), "use the mapping form"
    given = set(env) | set(hook_env_file_vars())
    unknown = given - node_env_names() - SDK_CREDENTIALS
    assert not unknown, f"given to the ingest service but never read by rill-ingest: {sorted(unknown)}"
    for needed in ("TABLE_NAME", "BUCKET_NAME", "HLS_BASE_URL", "AWS_ENDPOINT_URL", "AWS_REGION",
                   "WEBRTC_ADVERTISE_IP"):
        assert needed in given, needed
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert env["WEBRTC_ADVERTISE_IP"] == "${RILL_WEBRTC_ADVERTISE_IP:-127.0.0.1}"
    # The image's listeners are on every interface already (Dockerfile ENV).
    dockerfile = open(DOCKERFILE).read()
    for var in ("RTMP_ADDR=0.0.0.0:1935", "INGEST_HTTP_ADDR=0.0.0.0:8889", "WEBRTC_UDP_ADDR=0.0.0.0:8890"):
        assert var in dockerfile, var


def t_urls_the_api_hands_out_reach_the_ingest_service():
    ls_env = compose()["services"]["localstack"]["environment"]
    assert ls_env["RILL_INGEST_PUBLIC_URL"] == "${RILL_INGEST_PUBLIC_URL:-http://127.0.0.1:8889}"
    assert ls_env["RILL_RTMP_PUBLIC_URL"] == "${RILL_RTMP_PUBLIC_URL:-rtmp://127.0.0.1:1935/live}"
    assert "RILL_HLS_BASE_URL" in ls_env  # the hook reads it; the ingest node gets the result
    services = set(ls_env["SERVICES"].split(","))
    # The template's VPC and ECR repository need these with SERVICES set (strict loading).
    assert {"cloudformation", "lambda", "dynamodb", "dynamodbstreams", "s3", "iam", "sts", "ec2",
            "ecr"} <= services, sorted(services)


# --------------------------------------------------------------------- hook's rewrite


def t_codeuri_rewrite_of_the_real_template():
    original = open(TEMPLATE).read()
    text, binaries = rill_localstack.point_code_uris(original, "/rill/target/lambda/")
    bins = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "functions", "api", "src", "bin")))
    assert sorted(binaries.values()) == bins, "every rill-api binary is one function"
    before, after = cfn(original), cfn(text)
    functions = {n for n, r in before["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(binaries) == functions
    for name in functions:
        r = after["Resources"][name]
        binary = r["Metadata"]["BuildProperties"]["Binary"]
        assert binaries[name] == binary
        assert r["Properties"]["CodeUri"] == f"/rill/target/lambda/{binary}/", r["Properties"]["CodeUri"]
        before["Resources"][name]["Properties"]["CodeUri"] = r["Properties"]["CodeUri"]
    assert after == before, "only the functions' CodeUri may change"
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert len(changed) == len(functions) and len(text.splitlines()) == len(original.splitlines())


def t_codeuri_rewrite_cli_as_the_hook_runs_it():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "template.yaml")
        run = subprocess.run([sys.executable, HELPER, "codeuri", TEMPLATE, "/rill/target/lambda", out],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        printed = run.stdout.split()
        bins = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "functions", "api", "src", "bin")))
        assert sorted(printed) == bins, printed  # one line per function binary, none left out
        assert '      CodeUri: "/rill/target/lambda/streams-create/"\n' in open(out).read()


def t_codeuri_rewrite_takes_metadata_after_properties_and_refuses_gaps():
    sam_order = (
        "Resources:\n"
        "  AFunction:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      CodeUri: ../\n"
        "    Metadata:\n"
        "      BuildProperties:\n"
        "        Binary: a-b\n"
        "  Table:\n"
        "    Type: AWS::DynamoDB::Table\n"
        "    Properties:\n"
        "      CodeUri: untouched\n"
        "Outputs:\n"
        "  CodeUri:\n"
        "    Value: x\n")
    text, binaries = rill_localstack.point_code_uris(sam_order, "/l")
    assert binaries == {"AFunction": "a-b"}
    assert '      CodeUri: "/l/a-b/"\n' in text and "      CodeUri: untouched\n" in text
    for broken, why in ((sam_order.replace("        Binary: a-b\n", ""), "Binary"),
                        (sam_order.replace("      CodeUri: ../\n", ""), "CodeUri")):
        try:
            rill_localstack.point_code_uris(broken, "/l")
        except rill_localstack.RewriteError as e:
            assert why in str(e), e
        else:
            raise AssertionError(f"missing {why} accepted")


def t_sam_build_output_is_found_where_sam_puts_it():
    with tempfile.TemporaryDirectory() as repo:
        assert rill_localstack.sam_build_template(repo) is None
        root = os.path.join(repo, ".aws-sam", "build", "template.yaml")   # sam build -t infra/template.yaml
        infra = os.path.join(repo, "infra", ".aws-sam", "build", "template.yaml")  # cd infra && sam build
        os.makedirs(os.path.dirname(infra))
        open(infra, "w").close()
        assert rill_localstack.sam_build_template(repo) == infra
        os.makedirs(os.path.dirname(root))
        open(root, "w").close()
        os.utime(infra, (1, 1))
        assert rill_localstack.sam_build_template(repo) == root
        os.utime(root, (0, 0))
        assert rill_localstack.sam_build_template(repo) == infra


def t_ingest_env_file_round_trips_through_sh():
    tricky = "it's $HOME `x` \"q\""
    text = rill_localstack.ingest_env(
        [{"OutputKey": "TableName", "OutputValue": tricky}, {"OutputKey": "BucketName", "OutputValue": "b"},
         {"OutputKey": "Other", "OutputValue": "ignored"}], "http://h:1/b")
    with tempfile.NamedTemporaryFile("w", suffix=".env") as f:
        f.write(text)
        f.flush()
        out = subprocess.run(["/bin/sh", "-c", f'set -a; . "{f.name}"; printf "%s\\n" "$TABLE_NAME" '
                              '"$BUCKET_NAME" "$HLS_BASE_URL"'], env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [tricky, "b", "http://h:1/b"], out
    try:
        rill_localstack.ingest_env([{"OutputKey": "BucketName", "OutputValue": "b"}], "http://h")
    except rill_localstack.RewriteError as e:
        assert "TableName" in str(e)
    else:
        raise AssertionError("a missing TableName output was accepted")


# ------------------------------------------------------------------- the hook itself

FAKE_OUTPUTS = [
    {"OutputKey": "TableName", "OutputValue": "rill-StreamsTable-ABC123"},
    {"OutputKey": "BucketName", "OutputValue": "rill-media-local"},
    {"OutputKey": "ApiUrl", "OutputValue": "https://x.execute-api.us-east-1.amazonaws.com"},
]

# Stand-in for the aws CLI: logs its arguments; `cloudformation package` checks, as the
# real one does, that every function's CodeUri exists, and copies the template.
FAKE_AWS = r'''#!PYTHON
import json, os, re, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:2] == ["--region", "us-east-1"]:
    args = args[2:]
opt = lambda name: args[args.index(name) + 1]
if args[:2] == ["cloudformation", "package"]:
    src = opt("--template-file")
    base = os.path.dirname(src)
    for uri in re.findall(r'^\s+CodeUri:\s*"?([^"\n]+)"?$', open(src).read(), re.M):
        path = os.path.join(base, uri)
        if not os.path.isfile(os.path.join(path, "bootstrap")):
            sys.exit(f"fake aws: no bootstrap in {path}")
    shutil.copy(src, opt("--output-template-file"))
elif args[:2] == ["cloudformation", "deploy"]:
    sys.exit(1 if os.environ.get("FAKE_AWS_FAIL_DEPLOY") else 0)
elif args[:2] == ["cloudformation", "describe-stacks"]:
    print(os.environ["FAKE_AWS_OUTPUTS"])
'''


def run_hook(tmp, built=True, fail_deploy=False, extra_env=None):
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, "infra"))
    shutil.copy(TEMPLATE, os.path.join(repo, "infra"))
    os.makedirs(os.path.join(repo, "localstack", "init"))
    shutil.copy(HELPER, os.path.join(repo, "localstack", "init"))
    if built:
        for b in os.listdir(os.path.join(ROOT, "functions", "api", "src", "bin")):
            d = os.path.join(repo, "target", "lambda", b[:-3])
            os.makedirs(d)
            with open(os.path.join(d, "bootstrap"), "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(os.path.join(d, "bootstrap"), 0o755)
    bin_dir = os.path.join(tmp, "bin")
    os.makedirs(bin_dir)
    with open(os.path.join(bin_dir, "aws"), "w") as f:
        f.write(FAKE_AWS.replace("PYTHON", sys.executable, 1))
    os.chmod(os.path.join(bin_dir, "aws"), 0o755)
    os.symlink(sys.executable, os.path.join(bin_dir, "python3"))
    out_dir = os.path.join(tmp, "out")
    os.makedirs(out_dir)
    with open(os.path.join(out_dir, "ingest.env"), "w") as f:
        f.write("TABLE_NAME=stale-from-an-earlier-run\n")
    log = os.path.join(tmp, "aws.log")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "RILL_REPO": repo,
           "RILL_OUT_DIR": out_dir, "FAKE_AWS_LOG": log, "FAKE_AWS_OUTPUTS": json.dumps(FAKE_OUTPUTS)}
    if fail_deploy:
        env["FAKE_AWS_FAIL_DEPLOY"] = "1"
    env.update(extra_env or {})
    run = subprocess.run([HOOK], env=env, capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in open(log)] if os.path.exists(log) else []
    return run, calls, os.path.join(out_dir, "ingest.env")


def t_hook_deploys_cargo_lambda_binaries_and_writes_the_ingest_env():
    with tempfile.TemporaryDirectory() as tmp:
        run, calls, env_file = run_hook(tmp)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "using cargo lambda binaries" in run.stdout, run.stdout
        ops = [c[2:4] for c in calls]
        assert ops == [["s3api", "head-bucket"], ["cloudformation", "package"],
                       ["cloudformation", "deploy"], ["cloudformation", "describe-stacks"]], ops
        deploy = calls[2]
        params = deploy[deploy.index("--parameter-overrides") + 1:]
        assert params == [
            "JwtSecret=rill-localstack-dev-secret-not-for-production",
            "CreateUserPool=false",
            "MediaBucketName=rill-media-local",
            "HlsBaseUrl=http://localhost.localstack.cloud:4566/rill-media-local",
            "IngestPublicUrl=http://127.0.0.1:8889",
            "RtmpPublicUrl=rtmp://127.0.0.1:1935/live"], params
        assert deploy[deploy.index("--stack-name") + 1] == "rill"
        assert open(env_file).read() == (
            "TABLE_NAME=rill-StreamsTable-ABC123\nBUCKET_NAME=rill-media-local\n"
            "HLS_BASE_URL=http://localhost.localstack.cloud:4566/rill-media-local\n")
        assert "TableName\trill-StreamsTable-ABC123" in run.stdout  # the outputs are printed


def t_hook_settings_reach_the_stack_and_the_ingest_env():
    with tempfile.TemporaryDirectory() as tmp:
        run, calls, env_file = run_hook(tmp, extra_env={
            "RILL_STACK_NAME": "other", "RILL_MEDIA_BUCKET": "media-x",
            "RILL_HLS_BASE_URL": "http://cdn.test/m"})
        assert run.returncode == 0, run.stdout + run.stderr
        deploy = calls[2]
        assert deploy[deploy.index("--stack-name") + 1] == "other"
        assert "MediaBucketName=media-x" in deploy and "HlsBaseUrl=http://cdn.test/m" in deploy
        assert "HLS_BASE_URL=http://cdn.test/m\n" in open(env_file).read()


def t_hook_fails_without_binaries_naming_the_build_command():
    with tempfile.TemporaryDirectory() as tmp:
        run, calls, env_file = run_hook(tmp, built=False)
        assert run.returncode != 0
        assert "cargo lambda build --release -p rill-api" in run.stderr, run.stderr
        assert "streams-create" in run.stderr
        assert not any(c[2:4] == ["cloudformation", "deploy"] for c in calls), calls
        assert not os.path.exists(env_file), "the stale ingest.env must be gone"


def t_hook_failed_deploy_leaves_no_ingest_env():
    with tempfile.TemporaryDirectory() as tmp:
        run, calls, env_file = run_hook(tmp, fail_deploy=True)
        assert run.returncode != 0
        assert not os.path.exists(env_file), "LocalStack would turn healthy on a failed deploy"


def t_hook_prefers_sam_build_output():
    with tempfile.TemporaryDirectory() as tmp:
        # sam build -t infra/template.yaml from the repo root writes <repo>/.aws-sam/build/.
        repo = os.path.join(tmp, "repo")
        built = os.path.join(repo, ".aws-sam", "build")
        os.makedirs(os.path.join(built, "StreamsCreateFunction"))
        open(os.path.join(built, "StreamsCreateFunction", "bootstrap"), "w").close()
        with open(os.path.join(built, "template.yaml"), "w") as f:
            f.write("Resources:\n  StreamsCreateFunction:\n    Type: AWS::Serverless::Function\n"
                    "    Properties:\n      CodeUri: StreamsCreateFunction\n")
        run, calls, env_file = run_hook(tmp)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"using sam build output ({built})" in run.stdout, run.stdout
        package = calls[1]
        assert package[package.index("--template-file") + 1] == os.path.join(built, "template.yaml")


def t_hook_files_are_in_shape():
    assert os.access(HOOK, os.X_OK), "LocalStack runs ready.d/*.sh directly"
    # LocalStack runs every *.py in ready.d as a hook too: the helper must live elsewhere.
    assert not [f for f in os.listdir(os.path.dirname(HOOK)) if f.endswith(".py")]
    hook = open(HOOK).read()
    assert "cargo lambda build --release -p rill-api" in hook
    assert re.search(r"cargo lambda build --release(?! -p rill-api)", hook) is None, \
        "a bare `cargo lambda build` also builds rill-ingest, which fails under zig"
    for doc in (os.path.join(LOCALSTACK, "README.md"), COMPOSE):
        text = open(doc).read()
        assert re.search(r"cargo lambda build --release(?! -p rill-api| --arm64 -p rill-api)", text) is None, doc


# --------------------------------------------------------------------------- runner

CHECKS = [v for k, v in list(globals().items()) if k.startswith("t_") and callable(v)]


def main():
    passed, failed = 0, []
    for check in CHECKS:
        name = check.__name__[2:]
        try:
            check()
        except Exception:  # noqa: BLE001
            failed.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"\nlocalstack: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
