"""Regenerate ``config_cases.json`` by asking the reference wheel (run with the reference venv only)."""

import importlib.util
import json
import os
import pathlib

import nemo_relay.plugin as reference

_HERE = pathlib.Path(__file__).parent


def _cases():
    spec = importlib.util.spec_from_file_location("config_cases", _HERE / "config_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validate(config, policy=None):
    if policy is not None:
        config = dict(config, policy=policy)
    document = {"version": 1, "components": [{"kind": "observability", "config": config}]}
    return reference.validate(document)["diagnostics"]


def main():
    cases = _cases()
    os.environ.update(cases.ENV)
    for name in cases.UNSET_ENV:
        os.environ.pop(name, None)
    out = {
        "cases": [_validate(case) for case in cases.CASES],
        "policies": [_validate(cases.POLICY_DOC, policy) for policy in cases.POLICIES],
    }
    path = _HERE / "config_cases.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out['cases'])} cases and {len(out['policies'])} policy variants to {path}")


if __name__ == "__main__":
    main()
