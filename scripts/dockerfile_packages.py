"""The packages the runtime (last) stage of a Dockerfile installs with apt-get.

Shared by scripts/check-image.sh (NEEDED libraries vs these packages) and
scripts/check-image-rootfs.sh (a rootfs made from exactly these packages), so both read
the list from ingest-node/Dockerfile itself and cannot drift from it.

    python3 scripts/dockerfile_packages.py [Dockerfile]   # one package per line

Standard library only (runs with the system python3).
"""

import os
import re
import shlex
import sys


class DockerfileError(Exception):
    """The Dockerfile has no single `apt-get install` in its last stage."""


def runtime_packages(path):
    """Package names of the `apt-get install` in the Dockerfile's last stage."""
    lines, cur = [], ""
    for raw in open(path, encoding="utf-8").read().splitlines():
        s = raw.strip()
        if s.startswith("#") and not cur:
            lines.append(s)
            continue
        if s.startswith("#"):
            continue  # a comment line inside a continued instruction
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    if cur:
        lines.append(cur)
    stages = [i for i, line in enumerate(lines) if re.match(r"(?i)^FROM\s", line)]
    if not stages:
        raise DockerfileError(f"{path}: no FROM instruction")
    installs = []
    for line in lines[stages[-1]:]:
        if not re.match(r"(?i)^RUN\s", line):
            continue
        words = shlex.split(line[3:], comments=False, posix=True)
        for i in range(len(words) - 1):
            if words[i] in ("apt-get", "apt") and words[i + 1] == "install":
                pkgs = []
                for w in words[i + 2:]:
                    if w in ("&&", "||", ";", "|") or w.endswith(";"):
                        break
                    if not w.startswith("-"):
                        pkgs.append(w.split("=", 1)[0])
                installs.append(pkgs)
    if len(installs) != 1 or not installs[0]:
        raise DockerfileError(
            f"{path}: expected exactly one `apt-get install <packages>` in the runtime (last) "
            f"stage, found {len(installs)}; the image checks parse it")
    return installs[0]


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = argv[1] if len(argv) > 1 else os.path.join(root, "ingest-node", "Dockerfile")
    try:
        pkgs = runtime_packages(path)
    except (DockerfileError, OSError) as exc:
        print(f"dockerfile_packages: {exc}", file=sys.stderr)
        return 1
    print("\n".join(pkgs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
