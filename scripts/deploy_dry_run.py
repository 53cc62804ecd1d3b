#!/usr/bin/env python3
"""The README's deploy, run as a new user would, up to the point where AWS is contacted.

    scripts/deploy-dry-run.sh          (sets up the SAM CLI venv, then runs this)

In a scratch copy of what the commands read (samconfig.toml, infra/template.yaml,
Cargo.toml), with no AWS credentials, no AWS configuration and no stdin:

1. `sam build`, exactly as the README writes it, with `cargo` replaced by a stand-in that
   writes an empty `bootstrap` where `cargo lambda build --release --bin <name>` would
   (no Rust is compiled here: scripts/check-lambda-artifact.sh builds two functions for real,
   and a real `sam build` of all 40 takes ~8-13 minutes cold on 2 cores). Checked: SAM finds the
   template through samconfig.toml, builds every function with the rust-cargolambda method,
   one `--bin` per function, and writes .aws-sam/build/template.yaml.
2. `sam deploy --guided`, driven through a pseudo-terminal (pexpect), answering every
   prompt with Enter (its default). Checked: every template parameter is asked once, no
   prompt is asked again (a NoEcho parameter would be), no "<X> has no authentication. Is
   this okay? [y/N]" prompt (its default aborts), and the run ends where SAM first calls
   AWS ("Looking for resources needed for deployment", its managed artifacts bucket),
   failing there for lack of credentials - nothing was sent to AWS.

Exits non-zero if any check fails; prints the transcript then.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pexpect
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Another template (a negative control) can be given as the first argument.
TEMPLATE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "infra", "template.yaml")
SAM = os.path.join(os.path.dirname(sys.executable), "sam")

# Stand-in for `cargo`: `cargo lambda build ... --bin NAME` leaves an empty bootstrap where
# cargo-lambda would ($CARGO_TARGET_DIR/lambda/NAME/bootstrap); anything else fails, so SAM
# falls back to its defaults (e.g. no `cargo metadata`).
FAKE_CARGO = r"""#!/bin/sh
echo "cargo $*" >>"$RILL_DRY_RUN_LOG"
[ "$1" = lambda ] && [ "$2" = build ] || exit 1
bin=""
while [ $# -gt 0 ]; do [ "$1" = --bin ] && bin="$2"; shift; done
[ -n "$bin" ] || exit 1
dir="${CARGO_TARGET_DIR:-target}/lambda/$bin"
mkdir -p "$dir" && printf '#!/bin/sh\nexit 1\n' >"$dir/bootstrap" && chmod +x "$dir/bootstrap"
"""

# A click prompt with a default shows it in brackets; a NoEcho parameter has none.
PROMPT = r"\[[^\]\n]*\]: "
PROMPT_NO_DEFAULT = r"Parameter \w+(?:\x1b\[0m)?: "
# SAM colours its prompts whatever TERM says.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (values are not needed here)."""


CfnLoader.add_multi_constructor("!", lambda loader, tag, node: None)


def template():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=CfnLoader)


def scratch(tmp):
    work = os.path.join(tmp, "rill")
    os.makedirs(os.path.join(work, "infra"))
    for path in ("samconfig.toml", "Cargo.toml"):
        shutil.copy(os.path.join(ROOT, path), os.path.join(work, path))
    shutil.copy(TEMPLATE, os.path.join(work, "infra", "template.yaml"))
    stubs = os.path.join(tmp, "bin")
    os.makedirs(stubs)
    for name in ("cargo", "cargo-lambda"):  # SAM looks for cargo-lambda on PATH
        with open(os.path.join(stubs, name), "w") as f:
            f.write(FAKE_CARGO)
        os.chmod(os.path.join(stubs, name), 0o755)
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = {
        "PATH": os.pathsep.join([stubs, os.path.dirname(SAM), "/usr/bin", "/bin"]),
        "HOME": home,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "SAM_CLI_TELEMETRY": "0",
        # No credentials and no configuration anywhere, and no instance metadata service.
        "AWS_CONFIG_FILE": os.path.join(home, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "RILL_DRY_RUN_LOG": os.path.join(tmp, "cargo.log"),
    }
    return work, env


def check_build(work, env, functions, failures):
    failed = len(failures)
    run = subprocess.run([SAM, "build"], cwd=work, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    if run.returncode != 0 or "Build Succeeded" not in out:
        failures.append(f"sam build failed (exit {run.returncode}):\n{out}")
        return
    with open(env["RILL_DRY_RUN_LOG"]) as f:
        built = [line.split() for line in f if line.startswith("cargo lambda build")]
    bins = sorted(cmd[cmd.index("--bin") + 1] for cmd in built)
    want = sorted(functions.values())
    if bins != want:
        failures.append(f"sam build: cargo lambda built {bins}, template has {want}")
    if not all("--release" in cmd for cmd in built):
        failures.append("sam build: a cargo lambda build without --release")
    for logical in functions:
        if not os.path.exists(os.path.join(work, ".aws-sam", "build", logical, "bootstrap")):
            failures.append(f"sam build: no .aws-sam/build/{logical}/bootstrap")
    if failed != len(failures):
        return
    print(f"ok   sam build: {len(bins)} functions through `cargo lambda build --release --bin <name>`")


def check_guided_deploy(work, env, parameters, failures):
    failed = len(failures)
    child = pexpect.spawn(SAM, ["deploy", "--guided"], cwd=work, env=env, encoding="utf-8",
                          timeout=120, dimensions=(50, 400))
    transcript, prompts = [], []
    while True:
        i = child.expect([PROMPT, PROMPT_NO_DEFAULT, pexpect.EOF, pexpect.TIMEOUT])
        seen = ANSI.sub("", child.before + (child.after if isinstance(child.after, str) else ""))
        transcript.append(seen)
        if i >= 2:
            if i == 3:
                failures.append("sam deploy --guided: no prompt and no exit within 120 s")
            break
        prompt = seen.rsplit("\n", 1)[-1].strip()
        if i == 1:
            failures.append(f"asked without a default (Enter cannot answer it): {prompt!r}")
            break
        if prompt in prompts:
            failures.append(f"asked again: {prompt!r}")
            break
        if len(prompts) > 100:
            failures.append("more than 100 prompts")
            break
        prompts.append(prompt)
        child.sendline("")
    child.close()
    out = "".join(transcript)
    asked = [m.group(1) for m in (re.search(r"Parameter (\w+) \[", p) for p in prompts) if m]
    if sorted(asked) != sorted(parameters):
        failures.append(f"parameters asked {sorted(asked)}, template has {sorted(parameters)}")
    if "has no authentication" in out:
        failures.append("a 'has no authentication' prompt (its default N aborts the deploy)")
    for want in ("Stack Name [rill]", "Confirm changes before deploy [Y/n]",
                 "Allow SAM CLI IAM role creation [Y/n]", "Save arguments to configuration file [Y/n]"):
        if not any(p.startswith(want) for p in prompts):
            failures.append(f"prompt {want!r} not seen")
    # The end: SAM's first AWS call (its managed artifacts bucket), refused before any
    # request for want of credentials.
    tail = out.rsplit(prompts[-1], 1)[-1] if prompts else out
    if "Looking for resources needed for deployment" not in tail:
        failures.append("did not reach 'Looking for resources needed for deployment'")
    if not re.search(r"credentials", tail, re.IGNORECASE):
        failures.append("did not stop at the credentials (first AWS call)")
    if child.exitstatus in (0, None):
        failures.append(f"sam deploy --guided exited {child.exitstatus} without credentials")
    stop = [line.strip() for line in tail.splitlines() if "credentials" in line.lower()]
    if failed != len(failures):
        return out
    print(f"ok   sam deploy --guided: {len(prompts)} prompts answered with Enter "
          f"({len(asked)} parameters), none about authentication")
    print(f"ok   stopped where AWS is first contacted: {stop[0] if stop else '?'}")
    return out


def main():
    t = template()
    functions = {name: r["Metadata"]["BuildProperties"]["Binary"]
                 for name, r in t["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    failures = []
    with tempfile.TemporaryDirectory(prefix="rill-deploy-dry-run.") as tmp:
        work, env = scratch(tmp)
        check_build(work, env, functions, failures)
        out = check_guided_deploy(work, env, list(t["Parameters"]), failures) if not failures else ""
    if failures:
        print(out)
        for f in failures:
            print(f"FAIL {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
