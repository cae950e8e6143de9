"""cfn-lint accepts the synthesized templates; the Lambda package runs on Lambda, not only here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from infra_synth import PROJECT_DIR, Synth

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def test_cfn_lint_finds_no_error(synthesized: dict[str, Synth], with_waf: Synth) -> None:
    templates = [str(s.path) for s in synthesized.values()] + [str(with_waf.path)]
    result = subprocess.run([str(CFN_LINT), "--format", "json", "--", *templates],
                            capture_output=True, text=True, timeout=120)
    # Exit code bit flags: 2 errors, 4 warnings, 8 informational; anything else is a crash.
    matches = json.loads(result.stdout or "[]") if result.returncode in (0, 2, 4, 6, 8, 10, 12, 14) else None
    assert matches is not None, result.stderr[-4000:]
    errors = [m for m in matches if m["Level"] == "Error"]
    assert not errors and not result.returncode & 2, json.dumps(errors, indent=1)[:4000]


def _layer_zip(synth: Synth) -> Path:
    layer = synth.resources("AWS::Serverless::LayerVersion")
    (props,) = [r["Properties"] for r in layer.values()]
    key = props["ContentUri"]["Key"]
    return synth.outdir / f"asset.{key}"


def _requirement_names() -> set[str]:
    names = set()
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[=<>~!; ]", line, maxsplit=1)[0].lower().replace("-", "_"))
    return names


def test_lambda_layer_has_every_requirement_built_for_lambda(synthesized: dict[str, Synth]) -> None:
    # Given the dependency layer chalice packaged for the Lambda runtime (Amazon Linux 2, glibc 2.26)
    with zipfile.ZipFile(_layer_zip(synthesized["dev"])) as z:
        wheels: dict[str, Any] = {}
        for name in z.namelist():
            if name.endswith(".dist-info/WHEEL"):
                dist = name.split("/")[-2].removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("-", "_")
                wheels[dist] = z.read(name).decode()
    # Then every pinned requirement is there...
    missing = _requirement_names() - set(wheels)
    assert not missing, f"not in the Lambda layer (chalice could not get a Lambda build): {sorted(missing)}"
    # ... and no compiled package was built on this machine: such a wheel (tag linux_x86_64)
    # links the host's libraries (libjpeg, libxcb...) that the Lambda runtime does not have.
    host_built = sorted(dist for dist, text in wheels.items()
                        if re.search(r"^Tag: .*-linux_x86_64$", text, re.MULTILINE))
    assert not host_built, (
        f"{host_built} were compiled on this machine because no manylinux wheel for Lambda's Python 3.11 "
        "(glibc 2.26) exists at the pinned version: they will fail to import on Lambda. Pin a version that "
        "ships manylinux2014 wheels in requirements.txt (e.g. pillow==12.2.0, the last one for cp311).")


def test_code_and_layer_fit_lambdas_unzipped_limit(synthesized: dict[str, Synth]) -> None:
    synth = synthesized["dev"]
    code_key = synth.functions()["APIHandler"]["Properties"]["CodeUri"]["Key"]
    total = 0
    for path in (_layer_zip(synth), synth.outdir / f"asset.{code_key}"):
        with zipfile.ZipFile(path) as z:
            total += sum(i.file_size for i in z.infolist())
    assert total < 250 * 1024 * 1024, f"{total / 2**20:.0f} MiB unzipped: over Lambda's 250 MiB limit"
