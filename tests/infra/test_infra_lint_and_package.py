"""cfn-lint accepts the synthesized templates; the Lambda package runs on Lambda, not only here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

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


def _layer_wheels(synth: Synth) -> dict[str, str]:
    """Distribution name -> its WHEEL metadata, for every package in the dependency layer."""
    wheels: dict[str, str] = {}
    with zipfile.ZipFile(_layer_zip(synth)) as z:
        for name in z.namelist():
            if name.endswith(".dist-info/WHEEL"):
                dist = name.split("/")[-2].removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("-", "_")
                wheels[dist] = z.read(name).decode()
    return wheels


def test_lambda_layer_has_every_requirement(synthesized: dict[str, Synth]) -> None:
    missing = _requirement_names() - set(_layer_wheels(synthesized["dev"]))
    assert not missing, f"not in the Lambda layer (chalice could not get a Lambda build): {sorted(missing)}"


def test_lambda_layer_has_no_wheel_compiled_on_the_build_machine(synthesized: dict[str, Synth]) -> None:
    # Lambda's python3.11 runs on Amazon Linux 2 (glibc 2.26): chalice takes manylinux wheels up to
    # manylinux_2_26 and compiles anything else from its sdist here. Such a build (tag linux_x86_64)
    # links this machine's libraries (libjpeg, libxcb...) that Lambda does not have, so it fails to
    # import there; and a build machine without a C compiler and headers cannot build it at all.
    host_built = sorted(dist for dist, text in _layer_wheels(synthesized["dev"]).items()
                        if re.search(r"^Tag: .*-linux_x86_64$", text, re.MULTILINE))
    assert not host_built, (
        f"{host_built} compiled on the build machine: pin versions that ship manylinux2014 wheels for "
        "cp311 in requirements.txt (for pillow: 12.2.0)")


def test_code_and_layer_fit_lambdas_unzipped_limit(synthesized: dict[str, Synth]) -> None:
    synth = synthesized["dev"]
    code_key = synth.functions()["APIHandler"]["Properties"]["CodeUri"]["Key"]
    total = 0
    for path in (_layer_zip(synth), synth.outdir / f"asset.{code_key}"):
        with zipfile.ZipFile(path) as z:
            total += sum(i.file_size for i in z.infolist())
    assert total < 250 * 1024 * 1024, f"{total / 2**20:.0f} MiB unzipped: over Lambda's 250 MiB limit"
