"""Network-namespace lab fixtures for data-plane tests.

    from tests.lab import Topology, Lab, require_root

    require_root("tcpdump")
    with Lab(Topology(nodes=[...], lans={...}, routes={...})) as lab:
        lab.http_server("rs1")
        assert lab.http_get("client", "http://192.168.10.11/").startswith("rs1 ")

Modules: ``topology`` (the description), ``lab`` (building, commands, teardown), ``servers``
(peer-echo HTTP/UDP servers, nginx), ``capture`` (tcpdump + scapy), ``netns`` (setns from
Python, processes of a namespace), ``markers`` (unique prefixes, stale-lab sweep),
``require`` (skip or, with CI=true, fail).
"""

from tests.lab.capture import Capture
from tests.lab.errors import LabCommandError, LabError
from tests.lab.lab import Lab
from tests.lab.require import require_root
from tests.lab.servers import NginxServer, Server
from tests.lab.topology import Topology

__all__ = [
    "Capture",
    "Lab",
    "LabCommandError",
    "LabError",
    "NginxServer",
    "Server",
    "Topology",
    "require_root",
]
