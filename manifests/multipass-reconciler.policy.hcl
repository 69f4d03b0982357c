# What `reconciler run` needs, and nothing more. Attach it to the job, so the
# workload identity of its tasks carries it:
#
#   nomad acl policy apply -namespace default -job multipass-reconciler \
#     -description "multipass-reconciler" multipass-reconciler \
#     manifests/multipass-reconciler.policy.hcl
#
# tests/unit/test_manifests.py runs a pool's whole life with only this policy and
# shows each grant necessary by removing it. The CLI (`status` lists status/*,
# `apply` reads the leader lock) needs more: multipass-reconciler-operator.policy.hcl.

namespace "default" {
  variables {
    # Connection secrets: read only. The job's identity can read this exact path
    # anyway; the grant lets the same policy serve a token outside the job.
    path "nomad/jobs/multipass-reconciler" {
      capabilities = ["read"]
    }
    # Pool specs: listed and read, never written. Specs are people's to write.
    path "nomad/jobs/multipass-reconciler/pools/*" {
      capabilities = ["read", "list"]
    }
    # The Multipass hosts of the fleet: listed and read, never written (people's,
    # as specs are). Without list, host variables are silently left out of lists and
    # the reconciler would run as the single host of its settings.
    path "nomad/jobs/multipass-reconciler/hosts/*" {
      capabilities = ["read", "list"]
    }
    # What each pass saw and did: read back (cooldowns, CAS) and written; listed
    # and destroyed because it is also the pool's finalizer: a status whose spec is
    # gone is a deleted pool to scale to zero, and its status goes last.
    path "nomad/jobs/multipass-reconciler/status/*" {
      capabilities = ["read", "write", "list", "destroy"]
    }
    # Leader election: lock acquire, renew and release are writes. A lock another
    # replica holds answers 409 without read, which is all the standby needs.
    path "nomad/jobs/multipass-reconciler/leader" {
      capabilities = ["write"]
    }
  }

  # Allocations (what runs where, for drains and least_busy) and blocked
  # evaluations (autoscaling) are read through the namespace's read-job.
  capabilities = ["read-job"]
}

# Node list and reads, eligibility, drain and purge.
node {
  policy = "write"
}
