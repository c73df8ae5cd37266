"""Everything that talks to libvirt.  The rest of the app calls these, never libvirt itself.

Services use :class:`~fedoracloud.virt.hypervisor.Hypervisor` (one host's domains,
lifecycle, facts, CPU comparison, migration), :mod:`fedoracloud.virt.domain` (the
``DomainSpec`` a VM is defined from, with its validators and the MAC generator) and
:class:`~fedoracloud.virt.events.EventListener` (lifecycle events of one host).
Connections are pooled per host URI in :mod:`fedoracloud.virt.connection`.
"""
