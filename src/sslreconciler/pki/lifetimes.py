"""The default lifetimes the cluster PKI gives, in days: one home for `pki issue`, `pki renew`, `pki init-ca`
and `pki rotate-ca`, and their --help (imported by the CLI's parser, so it imports nothing)."""

HOST_DAYS = 1095  # a host certificate: `pki issue`, and `pki renew` past a lifetime not longer than the window
CA_DAYS = 3650  # a cluster CA: `pki init-ca`, `pki rotate-ca`
