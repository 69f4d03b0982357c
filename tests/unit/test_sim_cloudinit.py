import textwrap

import pytest

from reconciler.sim.cloudinit import CloudInitRejected, interpret

GOOD = textwrap.dedent(
    """\
    #cloud-config
    hostname: web-bcdfg-0
    write_files:
      - path: /etc/nomad.d/nomad.hcl
        content: |
          datacenter = "lab"
          name = "web-bcdfg-0"
          client {
            enabled    = true
            node_class = "web"
            node_pool  = "edge"
            servers    = ["10.0.0.2"]
            meta = {
              "multipass-reconciler.pool" = "web"
              "multipass-reconciler.template-hash" = "bcdfg"
            }
          }
    runcmd:
      - systemctl enable --now nomad
    """
)


def test_a_nomad_client_config_registers_the_node_it_describes() -> None:
    reg = interpret(GOOD, hostname="ignored")
    assert reg.name == "web-bcdfg-0"
    assert reg.datacenter == "lab"
    assert reg.node_class == "web"
    assert reg.node_pool == "edge"
    assert reg.meta == {
        "multipass-reconciler.pool": "web",
        "multipass-reconciler.template-hash": "bcdfg",
    }


def test_json_configs_count_too_and_hostname_is_the_default_name() -> None:
    data = textwrap.dedent(
        """\
        #cloud-config
        write_files:
          - path: /etc/nomad.d/client.json
            content: '{"client": {"enabled": true, "node_class": "c"}}'
        runcmd:
          - [systemctl, start, nomad]
        """
    )
    reg = interpret(data, hostname="vm-1")
    assert (reg.name, reg.node_class, reg.datacenter) == ("vm-1", "c", "dc1")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("#!/bin/sh\necho hi\n", "not #cloud-config"),
        ("#cloud-config\npackages: [htop]\n", "no Nomad configuration"),
        (GOOD.replace("enabled    = true", "enabled    = false"), "does not enable the client"),
        (GOOD.replace("systemctl enable --now nomad", "echo skipped"), "never starts"),
        (GOOD.replace("client {", "client {{"), "would not parse"),
    ],
)
def test_user_data_that_makes_no_client_never_joins(data: str, why: str) -> None:
    with pytest.raises(CloudInitRejected, match=why):
        interpret(data, hostname="x")
