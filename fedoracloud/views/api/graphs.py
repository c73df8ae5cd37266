"""``/api/v1/hosts/{id}/graphs/{graph}`` and ``/api/v1/vms/{id}/graphs/{graph}``: one graph
(CPU, memory, load, interfaces of a host; CPU, disk, network of a VM) from collectd's RRD
files, for the range ``?range=1h|1d|1w``."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...permissions import Permission
from ...request import FcRequest
from ...resources import HostContext, VmContext
from ...services.graphs import IGraphsService, parse_range


@view_config(
    route_name="api_host_graph", request_method="GET", renderer="json", permission=Permission.VIEW
)
def host_graph(context: HostContext, request: FcRequest) -> dict[str, Any]:
    """One graph of a host."""
    graph_range = parse_range(request.GET.getall("range"))
    graphs = request.find_service(IGraphsService)
    return graphs.host_graph(
        context.host.hostname, request.matchdict["graph"], graph_range
    ).as_json()


@view_config(
    route_name="api_vm_graph", request_method="GET", renderer="json", permission=Permission.VIEW
)
def vm_graph(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """One graph of a VM (from the virt plugin of whichever host ran it)."""
    vm = context.vm
    graph_range = parse_range(request.GET.getall("range"))
    graphs = request.find_service(IGraphsService)
    return graphs.vm_graph(vm.uuid, request.matchdict["graph"], graph_range, vm.vcpus).as_json()
