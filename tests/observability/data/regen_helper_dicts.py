"""Regenerate ``helper_dicts.json`` from the reference wheel (run with the reference venv only)."""

import importlib.util
import json
import pathlib

import nemo_relay.observability as reference

_HERE = pathlib.Path(__file__).parent


def main():
    spec = importlib.util.spec_from_file_location("helper_objects", _HERE / "helper_objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {name: obj.to_dict() for name, obj in module.build(reference).items()}
    (_HERE / "helper_dicts.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(out)} objects")


if __name__ == "__main__":
    main()
