# What multipass-reconciler needs, and nothing more. Attach it to the job, so the
# workload identity of its tasks carries it:
#
#   nomad acl policy apply -namespace default -job multipass-reconciler \
#     -description "multipass-reconciler" multipass-reconciler \
#     manifests/multipass-reconciler.policy.hcl

namespace "default" {
  variables {
    # Connection secrets and pool specs: read only. Specs are people's to write.
    path "nomad/jobs/multipass-reconciler" {
      capabilities = ["read"]
    }
    path "nomad/jobs/multipass-reconciler/pools/*" {
      capabilities = ["read", "list"]
    }
    # What each pass saw and did.
    path "nomad/jobs/multipass-reconciler/status/*" {
      capabilities = ["read", "list", "write"]
    }
    # Leader election: lock acquire, renew and release are writes.
    path "nomad/jobs/multipass-reconciler/leader" {
      capabilities = ["read", "write"]
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
