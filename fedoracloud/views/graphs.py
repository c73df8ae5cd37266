"""The graphs panel of the host and VM pages (``templates/graphs/panel.jinja2``): which
graphs, their JSON URLs and the ranges; ``static/graphs.js`` draws them with uPlot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyramid.events import BeforeRender, subscriber

from ..models import Host, Vm
from ..request import FcRequest
from ..services.graphs import DEFAULT_RANGE, HOST_GRAPHS, RANGES, VM_GRAPHS, GraphRange


@dataclass(frozen=True)
class GraphLink:
    """One graph of the panel: its name, title and JSON URL (without the range)."""

    name: str
    title: str
    url: str


@dataclass(frozen=True)
class GraphPanel:
    """What the panel shows for one host or VM."""

    graphs: list[GraphLink]
    ranges: list[GraphRange]
    default_range: str = DEFAULT_RANGE


def graph_panel(request: FcRequest, target: Host | Vm) -> GraphPanel:
    """The panel of a host's or a VM's page."""
    if isinstance(target, Host):
        graphs = [
            GraphLink(
                g.name,
                g.title,
                request.route_url("api_host_graph", host_id=target.id, graph=g.name),
            )
            for g in HOST_GRAPHS.values()
        ]
    else:
        graphs = [
            GraphLink(
                g.name, g.title, request.route_url("api_vm_graph", vm_id=target.id, graph=g.name)
            )
            for g in VM_GRAPHS.values()
        ]
    return GraphPanel(graphs, list(RANGES.values()))


@subscriber(BeforeRender)
def add_graph_panel(event: Any) -> None:
    """``graph_panel(request, host_or_vm)`` in every template."""
    event["graph_panel"] = graph_panel
