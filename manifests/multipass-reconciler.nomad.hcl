# multipass-reconciler as a Nomad service job.
#
# Two replicas: the one holding the lock on the variable
# nomad/jobs/multipass-reconciler/leader acts, the other observes and takes over
# within the lock's TTL + lock delay if the leader dies (at once if it stops
# cleanly). The job's name matters: Nomad gives a job's tasks read access to the
# variables under nomad/jobs/<job name>, where the pool specs live. The rest it
# needs (status and leader writes, node drains) comes from
# multipass-reconciler.policy.hcl, attached to this job (see docs/operations.md).
#
#   docker build -f manifests/Containerfile -t registry.lan/multipass-reconciler:0.1 .
#   nomad job run -var image=registry.lan/multipass-reconciler:0.1 \
#     manifests/multipass-reconciler.nomad.hcl

variable "image" {
  type        = string
  description = "the container image built from manifests/Containerfile"
  default     = "multipass-reconciler:latest"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

job "multipass-reconciler" {
  type        = "service"
  datacenters = var.datacenters

  group "reconciler" {
    count = 2

    # Never both replicas on one client: losing that machine would lose both.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "metrics" {}
    }

    service {
      name     = "multipass-reconciler"
      provider = "nomad"
      port     = "metrics"
      tags     = ["metrics"]

      # Alive: a reconcile pass started within the last 5 minutes.
      check {
        name     = "alive"
        type     = "http"
        path     = "/healthz"
        interval = "15s"
        timeout  = "3s"

        check_restart {
          limit = 3
          grace = "60s"
        }
      }

      # Ready: both inventories (Nomad, multipassd) read within the last 2 minutes.
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "15s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 5
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    # One replica at a time, so a leader always remains while the other updates.
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "30s"
      healthy_deadline = "5m"
      auto_revert      = true
    }

    task "reconciler" {
      driver = "docker"

      # On SIGTERM it finishes the calls in flight and releases the lock; give it time.
      # Whatever is cut short is idempotent and resumed by the next leader.
      kill_timeout = "30s"

      config {
        image = var.image
        args = [
          "--log-level", "INFO",
          "run",
          "--metrics-addr", "0.0.0.0:${NOMAD_PORT_metrics}",
        ]
        ports = ["metrics"]
      }

      # The workload identity, as NOMAD_TOKEN, with the Task API socket as NOMAD_ADDR:
      # no long-lived token to store; the ACL policy attached to the job applies.
      identity {
        env = true
      }

      env {
        NOMAD_ADDR = "unix://${NOMAD_SECRETS_DIR}/api.sock"
      }

      # The multipassd credentials from the job's own variable (`reconciler secrets
      # import | nomad var put -in json nomad/jobs/multipass-reconciler -`), as files
      # in the secrets directory, which only this task can read.
      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass_cert.pem"
        change_mode = "restart"
        perms       = "0600"
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .client_cert }}{{ end }}"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass_cert_key.pem"
        change_mode = "restart"
        perms       = "0600"
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .client_key }}{{ end }}"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/multipassd_cert.pem"
        change_mode = "restart"
        perms       = "0600"
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .server_cert }}{{ end }}"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/multipass-reconciler" -}}
          MULTIPASS_SERVER_ADDRESS={{ .multipass_address }}
          MULTIPASS_PASSPHRASE={{ .passphrase }}
          {{- end }}
          MULTIPASS_CLIENT_CERT={{ env "NOMAD_SECRETS_DIR" }}/multipass_cert.pem
          MULTIPASS_CLIENT_KEY={{ env "NOMAD_SECRETS_DIR" }}/multipass_cert_key.pem
          MULTIPASS_SERVER_CERT={{ env "NOMAD_SECRETS_DIR" }}/multipassd_cert.pem
        EOT
      }

      # Measured: `reconciler run` against `reconciler sim` with a converged 3-member
      # pool, /healthz, /readyz and /metrics polled every 15 s, holds 75-76 MB resident
      # (VmRSS in /proc/<pid>/status; under 1 MB more after 4 minutes) and uses ~0.2 s CPU
      # a minute once converged, under 1 s for start-up (docs/operations.md). 128 MB
      # leaves headroom for bigger pools; memory_max absorbs bursts where the cluster
      # has memory oversubscription enabled (ignored otherwise).
      resources {
        cpu        = 100
        memory     = 128
        memory_max = 256
      }
    }
  }
}
