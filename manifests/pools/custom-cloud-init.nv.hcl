# A pool with its own cloud-init: a GPU-less build farm with Docker, joined by name.
path = "nomad/jobs/multipass-reconciler/pools/builders"

items {
  min             = "2"
  max             = "4"
  count           = "2"
  cpus            = "4"
  memory          = "8G"
  disk            = "60G"
  node_class      = "builder"
  cloud_init_vars = "servers: [nomad-1.lan]\nnomad_version: 1.9.3"
  cloud_init      = <<-EOT
    #cloud-config
    hostname: {{ hostname }}
    package_update: true
    packages: [docker.io, unzip, curl]
    write_files:
      - path: /etc/nomad.d/client.hcl
        content: |
          name       = {{ instance | hcl }}
          datacenter = {{ datacenter | hcl }}
          data_dir   = "/opt/nomad/data"
          client {
            enabled    = true
            node_class = {{ node_class | hcl }}
            servers    = [{% for s in servers %}{{ s | hcl }}{{ ", " if not loop.last }}{% endfor %}]
            meta = {
              {{ meta_pool_key | hcl }} = {{ pool | hcl }}
              {{ meta_hash_key | hcl }} = {{ template_hash | hcl }}
            }
          }
      - path: /etc/systemd/system/nomad.service
        content: |
          [Unit]
          Description=Nomad client
          After=network-online.target docker.service
          Wants=network-online.target
          [Service]
          ExecStart=/usr/local/bin/nomad agent -config /etc/nomad.d
          Restart=on-failure
          KillSignal=SIGINT
          [Install]
          WantedBy=multi-user.target
    runcmd:
      - curl -fsSL -o /tmp/nomad.zip https://releases.hashicorp.com/nomad/{{ nomad_version }}/nomad_{{ nomad_version }}_linux_amd64.zip
      - unzip -o /tmp/nomad.zip -d /usr/local/bin
      - systemctl daemon-reload
      - systemctl enable --now docker
      - systemctl enable --now nomad
    EOT
}
