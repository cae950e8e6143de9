"""Synthesis of the CDK stacks for tests/infra (in-process, offline) and template helpers.

Chalice packages the app for each stack (``pip download`` of requirements.txt into a
layer cached in .chalice/deployments by the hash of requirements.txt: the first run
after a requirements change takes about a minute, later ones a few seconds). The
synthesis runs in a temporary directory and the environment is restored afterwards:
chalice's packaging sets the stage's environment variables on ``os.environ``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass
class Synth:
    """One synthesized stack: the CDK assertions Template, its JSON and the file cfn-lint reads."""

    stage: str
    stack: Any
    template: Any            # aws_cdk.assertions.Template
    json: dict[str, Any]
    path: Path
    outdir: Path

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == type_}

    def functions(self) -> dict[str, dict[str, Any]]:
        return self.resources("AWS::Serverless::Function")


def synthesize(workdir: Path, context: dict[str, Any]) -> dict[str, Synth]:
    from aws_cdk.assertions import Template

    from infra.cdk.app import build_app

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.chdir(workdir)  # chalice.cdk writes its chalice.out/ in the working directory
    try:
        app = build_app(context, outdir=str(workdir / "cdk.out"))
        assembly = app.synth()
        out: dict[str, Synth] = {}
        for artifact in assembly.stacks:
            stack = app.node.find_child(artifact.id)
            path = Path(artifact.template_full_path)
            out[artifact.id] = Synth(artifact.id, stack, Template.from_stack(stack),
                                     json.loads(path.read_text()), path, workdir / "cdk.out")
        return out
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def logical_id_of(synth: Synth, construct: Any) -> str:
    return synth.stack.get_logical_id(construct.node.default_child)


def iter_policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template: inline role policies, policies and managed policies."""
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs = []
        if res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [props["PolicyDocument"]]
        for doc in docs:
            for statement in doc["Statement"]:
                yield lid, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
