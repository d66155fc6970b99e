"""The policies the IAM tests evaluate, taken from where the project defines them.

* The Lambda role's inline policy, as the provider writes it: the expected documents of
  the Rust unit tests in provider/src/autoheal_instance/policy.rs
  (``attach_policy_has_exactly_these_statements`` and
  ``a_kms_key_adds_two_statements_on_that_key_only``, which assert that ``attach_policy``
  returns exactly them), with that test scope's values replaced by a stack's own. Reading
  them from the Rust source keeps this fixture in step with the provider: when
  ``attach_policy`` changes, its unit test changes with it.
* The README's policies (``<!-- policy: NAME -->`` JSON blocks of README.md).
* The scheduled-snapshot statements the role gains in docs/zone-failover.md, section 1
  (designed; typed here from that section until the provider writes them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
POLICY_RS = ROOT / "provider" / "src" / "autoheal_instance" / "policy.rs"
README = ROOT / "README.md"

# The scope of policy.rs's unit tests.
_TEST_SCOPE = {
    "partition": "aws",
    "region": "ap-southeast-2",
    "account": "111122223333",
    "volume": "vol-0123456789abcdef0",
    "allocation": "eipalloc-0123456789abcdef0",
    "group": "web-asg",
    "log_group": "/aws/lambda/web-attach",
    "key": "arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


@dataclass
class Scope:
    region: str
    account: str
    volume: str
    allocation: str
    group: str
    log_group: str
    key: str | None = None


def _json_macro_after(text: str, marker: str) -> str:
    """The argument of the first ``json!(...)`` after ``marker`` in Rust source."""
    start = text.index(marker)
    start = text.index("json!(", start) + len("json!(")
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c in "({[":
            depth += 1
        elif c in ")}]":
            if depth == 0:
                return text[start:i]
            depth -= 1
    raise ValueError(f"unbalanced json! after {marker!r}")


def _rust_json(src: str, constants: dict[str, str]) -> Any:
    for name, value in constants.items():
        src = re.sub(rf"(?<![\w\"]){name}(?![\w\"])", json.dumps(value), src)
    return json.loads(src)


def provider_attach_policy(scope: Scope) -> dict[str, Any]:
    """The inline policy the provider writes for ``scope`` (see the module doc)."""
    text = POLICY_RS.read_text()
    constants = {"KEY_ARN": _TEST_SCOPE["key"]}
    doc = _rust_json(_json_macro_after(text, "fn attach_policy_has_exactly_these_statements"), constants)
    if scope.key is not None:
        section = text[text.index("fn a_kms_key_adds_two_statements_on_that_key_only"):]
        grant = _rust_json(_json_macro_after(section, "s1[s0.len()],"), constants)
        use = _rust_json(_json_macro_after(section, "s1[s0.len() + 1],"), constants)
        doc["Statement"].extend([grant, use])
    raw = json.dumps(doc)
    replacements = [
        (_TEST_SCOPE["key"], scope.key or _TEST_SCOPE["key"]),
        (_TEST_SCOPE["log_group"], scope.log_group),
        (_TEST_SCOPE["volume"], scope.volume),
        (_TEST_SCOPE["allocation"], scope.allocation),
        ("autoScalingGroupName/" + _TEST_SCOPE["group"], "autoScalingGroupName/" + scope.group),
        (json.dumps(_TEST_SCOPE["group"]), json.dumps(scope.group)),
        ("ec2." + _TEST_SCOPE["region"] + ".amazonaws.com", f"ec2.{scope.region}.amazonaws.com"),
        (json.dumps(_TEST_SCOPE["account"]), json.dumps(scope.account)),
        (":" + _TEST_SCOPE["region"] + ":" + _TEST_SCOPE["account"] + ":", f":{scope.region}:{scope.account}:"),
    ]
    for old, new in replacements:
        raw = raw.replace(old, new)
    assert "111122223333" not in raw and "web-asg" not in raw, raw
    return json.loads(raw)


def readme_policies(name: str) -> list[dict[str, Any]]:
    """The README's JSON blocks marked ``<!-- policy: name -->``."""
    text = README.read_text()
    out = []
    for m in re.finditer(r"<!-- policy: ([\w-]+) -->\s*```json\n(.*?)```", text, re.DOTALL):
        if m.group(1) == name:
            out.append(json.loads(m.group(2)))
    return out


def scheduled_snapshot_policy(region: str, account: str, volume: str) -> dict[str, Any]:
    """docs/zone-failover.md, section 1: DescribeSnapshots on ``*``; CreateSnapshot on the
    stack's volume and, only with the request tag ``autoheal:snapshot = scheduled``, on
    ``snapshot/*``; CreateTags on ``snapshot/*`` only with ``ec2:CreateAction =
    CreateSnapshot``; DeleteSnapshot on ``snapshot/*`` only with ``ec2:ParentVolume`` = the
    volume's ARN and ``aws:ResourceTag/autoheal:snapshot = scheduled``."""
    volume_arn = f"arn:aws:ec2:{region}:{account}:volume/{volume}"
    snapshots = f"arn:aws:ec2:{region}::snapshot/*"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:DescribeSnapshots", "Resource": "*"},
        {"Sid": "SnapshotTheVolume", "Effect": "Allow", "Action": "ec2:CreateSnapshot", "Resource": volume_arn},
        {"Sid": "NewSnapshot", "Effect": "Allow", "Action": "ec2:CreateSnapshot", "Resource": snapshots,
         "Condition": {"StringEquals": {"aws:RequestTag/autoheal:snapshot": "scheduled"}}},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": snapshots,
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}},
        {"Sid": "Prune", "Effect": "Allow", "Action": "ec2:DeleteSnapshot", "Resource": snapshots,
         "Condition": {"StringEquals": {"ec2:ParentVolume": volume_arn,
                                        "aws:ResourceTag/autoheal:snapshot": "scheduled"}}},
    ]}
