# For people running the reconciler CLI against the deployed setup (a token of
# their own, not the job's identity):
#
#   nomad acl policy apply -description "multipass-reconciler operators" \
#     multipass-reconciler-operator manifests/multipass-reconciler-operator.policy.hcl
#   nomad acl token create -name alice -policy multipass-reconciler-operator
#
# Beyond what the job has (multipass-reconciler.policy.hcl): `reconciler apply`
# reads the leader lock to refuse to race a
# running leader, and people write and delete pool specs and host variables
# (`nomad var put`).
# `plan` needs only reads; `apply` acts, so it needs the job's writes as well.
# Drop the pools write/destroy to let someone look and apply but not edit specs.

namespace "default" {
  variables {
    path "nomad/jobs/multipass-reconciler" {
      capabilities = ["read"]
    }
    path "nomad/jobs/multipass-reconciler/pools/*" {
      capabilities = ["read", "list", "write", "destroy"]
    }
    # The fleet's hosts: people add, cordon, evacuate and remove them.
    path "nomad/jobs/multipass-reconciler/hosts/*" {
      capabilities = ["read", "list", "write", "destroy"]
    }
    path "nomad/jobs/multipass-reconciler/status/*" {
      capabilities = ["read", "list", "write", "destroy"]
    }
    path "nomad/jobs/multipass-reconciler/leader" {
      capabilities = ["read", "write"]
    }
  }

  capabilities = ["read-job"]
}

node {
  policy = "write"
}
