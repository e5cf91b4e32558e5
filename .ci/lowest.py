"""Print pip constraints pinning every dependency to the lowest version pyproject.toml allows (`>=X` → `==X`).

CI installs with these once more, so a floor that no longer works is found here, not on a user's machine.
"""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
extras = sys.argv[1:] or ["test"]
for dep in project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]:
    found = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", dep)
    if found:
        print(f"{found.group(1)}=={found.group(2)}")
