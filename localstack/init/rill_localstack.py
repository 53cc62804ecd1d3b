#!/usr/bin/env python3
"""Helpers of the LocalStack ready hook (ready.d/deploy.sh), kept out of the shell so that
tests/deploy/test_localstack.py can run them without Docker.

Standard library only: it runs on the LocalStack image's own python3.
Not in ready.d/ on purpose: LocalStack runs every *.py file there as a hook too.

    rill_localstack.py codeuri TEMPLATE LAMBDA_DIR OUT
        Copy TEMPLATE (infra/template.yaml) to OUT with every AWS::Serverless::Function's
        CodeUri pointing at LAMBDA_DIR/<Binary>/, the directory `cargo lambda build` puts
        that function's bootstrap in (<Binary> is Metadata.BuildProperties.Binary). Prints
        the binaries, one a line. Everything else is copied byte for byte.
    rill_localstack.py sam-build REPO
        Prints the `sam build` output template to deploy, if there is one: REPO/.aws-sam
        (`sam build -t infra/template.yaml` from the repository root) or
        REPO/infra/.aws-sam (`sam build` run inside infra/); the newer if both exist.
    rill_localstack.py ingest-env OUTPUTS_JSON HLS_BASE_URL OUT
        Write the ingest node's environment file (sourced by the compose file's ingest
        service) from the stack outputs (`describe-stacks --query Stacks[0].Outputs`):
        the table and bucket names CloudFormation gave, and the HLS base URL.
"""

import json
import os
import re
import shlex
import sys

FUNCTION_TYPE = "AWS::Serverless::Function"

# Environment file of the ingest node: variable -> stack output it comes from.
INGEST_ENV_FROM_OUTPUTS = {"TABLE_NAME": "TableName", "BUCKET_NAME": "BucketName"}

_RESOURCE = re.compile(r"^  ([A-Za-z0-9]+):\s*(#.*)?$")
_TYPE = re.compile(r"^    Type:\s*([A-Za-z0-9:]+)\s*(#.*)?$")
_BINARY = re.compile(r"^        Binary:\s*([A-Za-z0-9_.-]+)\s*(#.*)?$")
_CODE_URI = re.compile(r"^(      )CodeUri:(.*)$")


class RewriteError(Exception):
    pass


def _resource_blocks(lines):
    """(logical id, first line, end line) of every resource under the top-level Resources."""
    blocks, start, name, in_resources = [], None, None, False
    for i, line in enumerate(lines):
        top = line[:1] not in ("", " ", "#", "\n", "\r")
        if top:
            if name is not None:
                blocks.append((name, start, i))
                name = None
            in_resources = line.rstrip() == "Resources:"
            continue
        if not in_resources:
            continue
        m = _RESOURCE.match(line)
        if m:
            if name is not None:
                blocks.append((name, start, i))
            name, start = m.group(1), i
    if name is not None:
        blocks.append((name, start, len(lines)))
    return blocks


def point_code_uris(text, lambda_dir):
    """Returns (rewritten template text, {logical id: binary}).

    Line-based, so the template's tags (!Ref, !Sub, ...), comments and layout survive; the
    template keeps each function's Binary and CodeUri literal (see its header), at the
    indentation checked here. Metadata may come before or after Properties (sam build
    writes it after)."""
    lines = text.splitlines(keepends=True)
    lambda_dir = lambda_dir.rstrip("/")
    binaries = {}
    for name, start, end in _resource_blocks(lines):
        block = range(start + 1, end)
        types = [m.group(1) for m in (_TYPE.match(lines[i]) for i in block) if m]
        if types != [FUNCTION_TYPE]:
            continue
        bins = [m.group(1) for m in (_BINARY.match(lines[i]) for i in block) if m]
        uris = [i for i in block if _CODE_URI.match(lines[i])]
        if len(bins) != 1:
            raise RewriteError(f"{name}: expected one Metadata.BuildProperties.Binary, found {len(bins)}")
        if len(uris) != 1:
            raise RewriteError(f"{name}: expected one Properties.CodeUri, found {len(uris)}")
        i = uris[0]
        eol = lines[i][len(lines[i].rstrip("\r\n")):]
        # A JSON string is a YAML double-quoted scalar: safe for any path.
        lines[i] = f"{_CODE_URI.match(lines[i]).group(1)}CodeUri: {json.dumps(f'{lambda_dir}/{bins[0]}/')}{eol}"
        binaries[name] = bins[0]
    if not binaries:
        raise RewriteError(f"no {FUNCTION_TYPE} found")
    return "".join(lines), binaries


def sam_build_template(repo):
    """The newest `sam build` output template under repo, or None."""
    found = [p for p in (os.path.join(repo, ".aws-sam", "build", "template.yaml"),
                         os.path.join(repo, "infra", ".aws-sam", "build", "template.yaml"))
             if os.path.isfile(p)]
    return max(found, key=os.path.getmtime) if found else None


def ingest_env(outputs, hls_base_url):
    """Text of the ingest node's environment file (POSIX sh, for `set -a; . file`)."""
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs or []}
    values = {}
    for var, key in INGEST_ENV_FROM_OUTPUTS.items():
        if not by_key.get(key):
            raise RewriteError(f"stack output {key} missing (needed for {var})")
        values[var] = by_key[key]
    values["HLS_BASE_URL"] = hls_base_url
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def _write(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    try:
        if len(argv) == 4 and argv[0] == "codeuri":
            with open(argv[1]) as f:
                text, binaries = point_code_uris(f.read(), argv[2])
            _write(argv[3], text)
            print("\n".join(binaries.values()))
        elif len(argv) == 2 and argv[0] == "sam-build":
            found = sam_build_template(argv[1])
            if found:
                print(found)
        elif len(argv) == 4 and argv[0] == "ingest-env":
            with open(argv[1]) as f:
                outputs = json.load(f)
            _write(argv[3], ingest_env(outputs, argv[2]))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except RewriteError as e:
        print(f"rill_localstack.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
