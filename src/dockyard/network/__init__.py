"""Container networking: IPAM, bridge driver (veth + netns via netlink), firewall, userland proxy, DNS.

Everything here is imported lazily by the daemon only (pyroute2 is slow to import).
"""
