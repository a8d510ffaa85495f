#!/usr/bin/env bash
# The uplink against the cloud brokers too slow to start for every run of
# scripts/test.sh: RabbitMQ 3.10 with its MQTT plugin (10-30 s to start) and
# a 3-node NATS cluster with JetStream MQTT, whose node the uplink is on is
# killed mid-drain (about 25 s). Both run from Debian's packages on private
# loopback ports and temporary directories; nothing under /etc is touched.
#
#   ./scripts/test-clouds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
export EDGEGW_TEST_CLOUDS=1
go test -race -count=1 -timeout 10m -run 'TestRabbitMQ|TestNATS' -v ./mqtt/mqtttest ./gateway/uplink 2>&1 |
  grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test\.go)'
