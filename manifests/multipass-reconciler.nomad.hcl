# multipass-reconciler as a Nomad service job.
#
# Two replicas: the one holding the lock on the variable
# nomad/jobs/multipass-reconciler/leader acts, the other observes and takes over
# within the lock's TTL + lock delay if the leader dies (at once if it stops
# cleanly). The job's name matters: Nomad lets a job's tasks read exactly the
# variables nomad/jobs/<job>, nomad/jobs/<job>/<group> and .../<group>/<task>,
# so the credentials in nomad/jobs/multipass-reconciler reach the templates below
# without a policy. Nothing under those paths is covered (pools/*, status/*,
# leader): reading the pool specs, writing status and the leader lock, and node
# drains all come from multipass-reconciler.policy.hcl, attached to this job
# (see docs/operations.md).
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
      # in the secrets directory. The image runs as 65534:65534 (manifests/Containerfile):
      # the files are that user's, mode 0600, or the task could not read them (Nomad
      # writes templates as the agent's user otherwise; uid/gid need a Linux client
      # running as root, and no user namespace remapping in Docker).
      #
      # Items: client_cert, client_key and multipass_address are required (there is no
      # multipassd socket inside the container); server_cert is optional but without it
      # the reconciler refuses to start unless MULTIPASS_SKIP_VERIFY=true; passphrase is
      # optional (only needed while the daemon has not yet trusted the certificate).
      # A missing item renders as "", so the env file below names a file or sets a
      # variable only when its item is there (`.item.Value`: the item itself is a struct,
      # and a struct is always true to `if`); without client_cert and client_key the
      # reconciler reads the variable itself and names the missing item.
      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass_cert.pem"
        change_mode = "restart"
        perms       = "0600"
        uid         = 65534
        gid         = 65534
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .client_cert }}{{ end }}"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass_cert_key.pem"
        change_mode = "restart"
        perms       = "0600"
        uid         = 65534
        gid         = 65534
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .client_key }}{{ end }}"
      }

      template {
        destination = "${NOMAD_SECRETS_DIR}/multipassd_cert.pem"
        change_mode = "restart"
        perms       = "0600"
        uid         = 65534
        gid         = 65534
        data        = "{{ with nomadVar \"nomad/jobs/multipass-reconciler\" }}{{ .server_cert }}{{ end }}"
      }

      # toJSON: a passphrase may hold quotes, backslashes, '#' or spaces, which the env
      # file parser would otherwise cut or reject; it reads JSON strings back unchanged.
      template {
        destination = "${NOMAD_SECRETS_DIR}/multipass.env"
        env         = true
        change_mode = "restart"
        perms       = "0600"
        uid         = 65534
        gid         = 65534
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/multipass-reconciler" -}}
          {{ with .multipass_address.Value }}MULTIPASS_SERVER_ADDRESS={{ . | toJSON }}{{ end }}
          {{ with .passphrase.Value }}MULTIPASS_PASSPHRASE={{ . | toJSON }}{{ end }}
          {{ if and .client_cert.Value .client_key.Value -}}
          MULTIPASS_CLIENT_CERT={{ env "NOMAD_SECRETS_DIR" }}/multipass_cert.pem
          MULTIPASS_CLIENT_KEY={{ env "NOMAD_SECRETS_DIR" }}/multipass_cert_key.pem
          {{ end -}}
          {{ with .server_cert.Value }}MULTIPASS_SERVER_CERT={{ env "NOMAD_SECRETS_DIR" }}/multipassd_cert.pem{{ end }}
          {{- end }}
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
