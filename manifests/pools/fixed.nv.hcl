# A fixed-size pool of three clients: `nomad var put -in hcl - < manifests/pools/fixed.nv.hcl`
path = "nomad/jobs/multipass-reconciler/pools/web"

items {
  min             = "3"
  max             = "3"
  image           = "24.04"
  cpus            = "2"
  memory          = "4G"
  disk            = "20G"
  node_class      = "web"
  cloud_init_vars = "servers: [nomad-1.lan, nomad-2.lan, nomad-3.lan]"
  drain_deadline  = "30m"
}
