"""Packaging for FedoraCloud, the Pyramid application that runs the Fedora Cloud.

``pip install 'fedoracloud[web]'`` installs the app, its CLI and workers (the UI boxes);
``pip install 'fedoracloud[node]'`` only what the node agent ``fedoracloud-node`` needs
(the standard library, libvirt and cryptography: no web stack).
"""

from setuptools import find_packages, setup

#: the node agent's needs, shared by every install
node_requires = [
    "libvirt-python>=9.0",
    "cryptography>=42",
]

#: the web application, its CLI, workers, event listeners and console proxy
web_requires = [
    "pyramid>=2.0.2",
    # Pyramid imports pkg_resources, which setuptools 82 removed
    "setuptools>=68,<82",
    "pyramid_jinja2>=2.10",
    "pyramid_tm>=2.5",
    "pyramid_retry>=2.1.1",
    "pyramid_services>=2.2",
    "SQLAlchemy>=2.0.30",
    "zope.sqlalchemy>=3.1",
    "transaction>=4.0",
    "alembic>=1.13",
    "psycopg[binary]>=3.1.18",
    "waitress>=3.0",
    "plaster_pastedeploy>=1.0.1",
    "libpass>=1.9",
    "bcrypt>=4.1",
    "Authlib>=1.3",
    "requests>=2.31",
    "python-fedora>=1.1.1",
    "PyYAML>=6.0",
    "celery>=5.4",
    "rrdtool>=0.1.16",
    "websockify>=0.11",
    "openapi-core>=0.19",
    "jsonschema-rs>=0.20",
]

test_requires = [
    "pytest>=8.0",
    "pytest-cov>=5.0",
    "pytest-xdist>=3.6",  # make test runs the suite on parallel workers
    "WebTest>=3.0.1",
    "factory_boy>=3.3",
    "playwright>=1.45",  # the browser tests drive Debian's chromium (no browser download)
    "schemathesis>=4.0",
    "hypothesis>=6.100",
    "websockets>=13",  # the console tests' and benchmark's WebSocket client
]

dev_requires = [
    "ruff>=0.6",
    "mypy>=1.10",
    "pyramid_debugtoolbar>=4.12",
]

setup(
    name="fedoracloud",
    version="0.1.0",
    description="FedoraCloud: run the Fedora Cloud, a fleet of KVM hosts, from one web application",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Pyramid",
        "Topic :: System :: Systems Administration",
    ],
    license="GPL-2.0-or-later",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
    include_package_data=True,
    zip_safe=False,
    install_requires=node_requires,
    extras_require={
        "node": [],
        "web": web_requires,
        "test": web_requires + test_requires,
        "dev": web_requires + dev_requires + test_requires,
    },
    entry_points={
        "paste.app_factory": ["main = fedoracloud.app:main"],
        "console_scripts": [
            "fedoracloud = fedoracloud.cli:main",
            "fedoracloud-node = fedoracloud.node_agent:main",
        ],
    },
)
