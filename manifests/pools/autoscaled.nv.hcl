# An autoscaled pool: grows with allocated memory and with work Nomad cannot place.
path = "nomad/jobs/multipass-reconciler/pools/batch"

items {
  min             = "1"
  max             = "8"
  cpus            = "4"
  memory          = "8G"
  disk            = "40G"
  node_class      = "batch"
  cloud_init_vars = "servers: [nomad-1.lan]"
  scale_in        = "empty_ignore_system"
  policy          = <<-EOT
    cooldown: 5m
    cooldown_on_scale_up: 1m
    evaluation_interval: 30s
    checks:
      - name: memory
        metric: percentage-allocated_memory
        strategy: {name: target-value, target: 70}
      - name: cpu
        metric: percentage-allocated_cpu
        strategy: {name: target-value, target: 80}
      - name: unplaced
        metric: blocked_evaluations
    EOT
}
