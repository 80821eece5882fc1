"""Print the API's OpenAPI document: ``python -m blacksmith_mini.api.openapi > openapi.json``."""

from __future__ import annotations

import json
import sys
import tempfile

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(settings_mod.load(simulate=True, data_dir=data_dir))
        json.dump(app.openapi(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
