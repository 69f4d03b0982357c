"""multipass-reconciler: keeps Multipass VMs running as Nomad clients in line with a pool spec."""

__version__ = "0.1.0"
