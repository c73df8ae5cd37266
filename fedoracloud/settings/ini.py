"""Reading the ini file's ``[app:main]`` section outside a WSGI server (the CLI, the
console proxy's ``--token-source``)."""

from __future__ import annotations

import configparser
import os


def read_app_settings(ini: str) -> dict[str, str]:
    """The ini's ``[app:main]`` settings as PasteDeploy gives them to the app (``[DEFAULT]``
    included, ``%(here)s`` and ``%(__file__)s`` interpolated, ``use`` left out), without
    loading the app the section ``use``s: the CLI need not import the web stack to run."""
    path = os.path.abspath(ini)
    parser = configparser.ConfigParser(
        defaults={"here": os.path.dirname(path), "__file__": path}, strict=False
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    with open(path, encoding="utf-8") as stream:
        parser.read_file(stream)
    return {
        key: value
        for key, value in parser.items("app:main")
        if key not in ("use", "here", "__file__")
    }
