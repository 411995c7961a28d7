"""Helpers shared by the tests (never imported by the package): hand-built captures and packets
(pcap_helpers), TLS messages and flows (tls_helpers), UDP flows (udp_helpers), policy frames
(policy_helpers)."""
